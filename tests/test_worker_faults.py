"""Worker faults: killed process trees, jobs longer than the visibility timeout, warm
shutdowns, thousands of concurrent submissions and a hostile message; every accepted
task ends in exactly one terminal state (docs/reliability.md).

Executions are counted in Redis: each start of a task adds one to its ledger's
``attempts``."""

from __future__ import annotations

import signal
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


@pytest.mark.timeout(240)
def test_a_killed_worker_tree_s_jobs_finish_on_another_worker_within_a_minute(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web:
        with worker_process(url, "--concurrency=2", "--hostname=doomed@%h") as doomed:
            tasks = [submit_slow_job(web, 8, name=f"job {n}") for n in range(4)]
            # Two run, and each process has fetched one more ahead.
            wait_until(
                lambda: sum(task_record(web, t["id"])["state"] == "PROGRESS" for t in tasks) == 2,
                timeout=30,
            )
            for process in psutil.Process(doomed.pid).children(recursive=True):
                process.kill()
            doomed.kill()
            killed_at = time.monotonic()
            running = next(t for t in tasks if task_record(web, t["id"])["state"] == "PROGRESS")
            # Until it runs again, the record says its worker is gone.
            warning = wait_until(lambda: task_record(web, running["id"]).get("warning"), timeout=40)
            assert "not been seen" in warning
        with worker_process(url, "--concurrency=2", "--hostname=rescuer@%h"):
            finished = [wait_for_task(web, t["id"], TERMINAL_STATES, timeout=90) for t in tasks]
            assert time.monotonic() - killed_at < 60 + 8 * 2  # requeued within 60 s, then run
        assert [task["state"] for task in finished] == ["SUCCESS"] * 4
        assert all(task["worker"].startswith("rescuer@") for task in finished)


#: A short visibility timeout (renewed every 2 s), so a job can outlast it three times over.
SHORT_LEASES = {
    "FLASK_CELERY__broker_transport_options__visibility_timeout": "6",
    "FLASK_CELERY__broker_transport_options__unacked_restore_interval": "1",
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
