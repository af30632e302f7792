"""Worker faults: killed process trees, jobs longer than the visibility timeout, warm
shutdowns, thousands of concurrent submissions and a hostile message; every accepted
task ends in exactly one terminal state (docs/reliability.md).

Executions are counted in Redis: each start of a task adds one to its ledger's
``attempts``."""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from support import (
    TERMINAL_STATES,
    every_task,
    scaled,
    submit_slow_job,
    task_record,
    wait_for_task,
    wait_until,
    web_process,
    worker_process,
)

from my_app import create_app


def workers_online(web: str) -> set[str]:
    """The names of the workers whose heartbeat the service sees."""
    system = requests.get(f"{web}/api/system", timeout=10).json()
    return {worker["name"].split("@")[0] for worker in system["workers"]}


def kill_tree(worker: subprocess.Popen) -> float:
    """``kill -9`` a worker and its pool processes; returns when (monotonic)."""
    for process in psutil.Process(worker.pid).children(recursive=True):
        process.kill()
    worker.kill()
    return time.monotonic()


@pytest.mark.timeout(240)
def test_a_killed_worker_s_jobs_run_again_within_a_minute_while_another_worker_runs(
    redis_process,
):
    """A worker is killed (-9, pool and all) while the rescuing worker is already running,
    so no start-up sweep helps: its jobs run again on the rescuer within 60 s.

    Fails without the leases' own sweep (RESTORE_SWEEP off, or
    ``restore_expired_messages`` emptied): kombu's running worker restores only about
    every 100 s."""
    url = f"{redis_process.url}/0"
    with web_process(url) as web:
        with worker_process(url, "--concurrency=2", "--hostname=rescuer@%h", "-Q", "heavy"):
            with worker_process(url, "--concurrency=2", "--hostname=doomed@%h") as doomed:
                wait_until(lambda: workers_online(web) == {"rescuer", "doomed"}, timeout=30)
                tasks = [submit_slow_job(web, 6, name=f"job {n}") for n in range(2)]
                wait_until(
                    lambda: all(task_record(web, t["id"])["state"] == "PROGRESS" for t in tasks),
                    timeout=30,
                )
                # The rescuer consumes "default" only from now on: it is running, its
                # start-up sweep long done, when the other worker dies.
                requests_add_consumer(url, "rescuer", "default")
                killed_at = kill_tree(doomed)
            first = tasks[0]["id"]
            warning = wait_until(lambda: task_record(web, first).get("warning"), timeout=40)
            assert "not been seen" in warning
            again = [
                wait_until(
                    lambda t=t: task_record(web, t["id"])["worker"].startswith("rescuer@") or None,
                    timeout=90,
                )
                for t in tasks
            ]
            assert all(again)
            rerun_after = time.monotonic() - killed_at
            finished = [wait_for_task(web, t["id"], TERMINAL_STATES, timeout=60) for t in tasks]
        assert rerun_after < 60, f"the killed worker's jobs ran again after {rerun_after:.0f} s"
        assert [task["state"] for task in finished] == ["SUCCESS"] * 2
        assert all(task["attempts"] == 2 for task in finished)


@pytest.mark.timeout(120)
def test_with_the_sweep_off_a_running_worker_leaves_a_dead_worker_s_job_waiting(
    redis_process,
):
    """The counter-test: with RESTORE_SWEEP off, kombu's own sweep does not bring a dead
    worker's job back within four visibility timeouts (6 s leases), although the other
    worker is idle; with it on the same job is back within one timeout and a renewal.

    It fails if kombu's running worker ever restores promptly on its own, which would
    make the sweep (and this pair of tests) unnecessary."""
    url = f"{redis_process.url}/0"
    for sweep, expected in (("false", False), ("true", True)):
        env = {**SHORT_LEASES, "FLASK_RESTORE_SWEEP": sweep}
        with web_process(url) as web:
            with worker_process(url, "--hostname=rescuer@%h", "-Q", "heavy", env=env):
                with worker_process(url, "--hostname=doomed@%h", env=env) as doomed:
                    wait_until(lambda: workers_online(web) >= {"rescuer", "doomed"}, timeout=30)
                    task = submit_slow_job(web, 30, name=f"sweep {sweep}")
                    wait_for_task(web, task["id"], {"PROGRESS"}, timeout=30)
                    requests_add_consumer(url, "rescuer", "default")
                    kill_tree(doomed)
                try:
                    wait_until(
                        lambda task=task: (
                            task_record(web, task["id"])["worker"].startswith("rescuer@") or None
                        ),
                        timeout=24,
                    )
                    rescued = True
                except AssertionError:  # not met in time
                    rescued = False
                assert rescued is expected, f"RESTORE_SWEEP={sweep}"
                requests.delete(f"{web}/api/tasks/{task['id']}", timeout=10)


def requests_add_consumer(redis_url: str, worker: str, queue: str) -> None:
    """Tell the running worker ``worker`` to consume ``queue`` too (Celery's remote
    control ``add_consumer``), and wait until it does."""
    app = create_app("testing", REDIS_URL=redis_url)
    celery_app = app.extensions["celery"]
    names = [name for reply in celery_app.control.ping(timeout=2) for name in reply]
    destination = [name for name in names if name.startswith(f"{worker}@")]
    replies = celery_app.control.add_consumer(queue, destination=destination, reply=True)
    assert replies, f"{worker} did not answer add_consumer"


#: A short visibility timeout (renewed every 2 s), so a job can outlast it three times over.
SHORT_LEASES = {
    "FLASK_CELERY__broker_transport_options__visibility_timeout": "6",
}


@pytest.mark.timeout(240)
def test_a_job_longer_than_the_visibility_timeout_runs_once(redis_process):
    url = f"{redis_process.url}/0"
    with (
        web_process(url, env=SHORT_LEASES) as web,
        worker_process(url, "--concurrency=1", env=SHORT_LEASES),
        worker_process(url, "--concurrency=1", "--hostname=other@%h", env=SHORT_LEASES),
    ):
        task = submit_slow_job(web, 20)  # over three visibility timeouts
        final = wait_for_task(web, task["id"], TERMINAL_STATES, timeout=120)
    assert final["state"] == "SUCCESS"
    assert final["attempts"] == 1


@pytest.mark.timeout(240)
def test_sigterm_lets_the_running_job_finish_and_queued_ones_wait(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web:
        with worker_process(url, "--concurrency=1") as worker:
            running = submit_slow_job(web, 4)
            waiting = [submit_slow_job(web, 0, name=f"waiting {n}") for n in range(3)]
            wait_for_task(web, running["id"], {"PROGRESS"}, timeout=30)
            worker.send_signal(signal.SIGTERM)  # warm shutdown
            worker.wait(timeout=60)
        assert task_record(web, running["id"])["state"] == "SUCCESS"
        assert {task_record(web, t["id"])["state"] for t in waiting} == {"QUEUED"}
        with worker_process(url, "--concurrency=1"):
            finished = [wait_for_task(web, t["id"], TERMINAL_STATES) for t in waiting]
    assert [(t["state"], t["attempts"]) for t in finished] == [("SUCCESS", 1)] * 3


@pytest.mark.timeout(420)
def test_5000_concurrent_submissions_each_run_exactly_once(redis_process):
    url = f"{redis_process.url}/0"
    per_client = scaled(625, minimum=100)  # 8 clients: 5000 at TEST_SCALE=1
    with web_process(url) as web, worker_process(url, "--concurrency=8", "--pool=threads"):

        def submit_many(client_number: int) -> list[str]:
            with requests.Session() as session:
                return [
                    session.post(
                        f"{web}/api/tasks/slow",
                        json={"name": f"c{client_number}-{n}", "seconds": 0},
                        timeout=60,
                    ).json()["id"]
                    for n in range(per_client)
                ]

        with ThreadPoolExecutor(8) as pool:
            ids = [task_id for batch in pool.map(submit_many, range(8)) for task_id in batch]
        assert len(set(ids)) == 8 * per_client

        def all_done() -> list[dict] | None:
            tasks = every_task(web)
            return tasks if all(t["state"] == "SUCCESS" for t in tasks) else None

        tasks = wait_until(all_done, timeout=300, interval=2)
    assert sorted(t["id"] for t in tasks) == sorted(ids)
    assert all(t["attempts"] == 1 for t in tasks)


@pytest.mark.timeout(120)
def test_a_pickled_message_is_refused_and_nothing_runs(redis_process):
    url = f"{redis_process.url}/0"
    app = create_app("testing", REDIS_URL=url)
    celery_app = app.extensions["celery"]
    with web_process(url) as web, worker_process(url, "--concurrency=1") as worker:
        with app.app_context():
            hostile = celery_app.send_task(
                "my_app.tasks.slow_task", kwargs={"name": "pickled", "seconds": 0},
                serializer="pickle",
            )  # fmt: skip
        wait_until(lambda: queue_length(app, "default") == 0, timeout=30)
        after = submit_slow_job(web, 0)
        assert wait_for_task(web, after["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        refused = task_record(web, hostile.id)
        assert refused["attempts"] == 0 and refused["started_at"] is None
        assert refused["state"] in {"QUEUED", "LOST"}
        assert worker.poll() is None


def queue_length(app, queue: str) -> int:
    return app.extensions["redis"].llen(queue)
