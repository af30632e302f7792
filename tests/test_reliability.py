"""The fault-injection suite: Redis, workers and the web server as real processes, killed,
stopped, restarted and paused; every accepted task ends in exactly one terminal state.

Executions are counted in Redis: each start of a task adds one to its ledger's
``attempts`` (docs/reliability.md says which guarantee each test proves)."""

from __future__ import annotations

import time

import psutil
import pytest
import requests
from conftest import wait_until, web_process, worker_process

TERMINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}


def record(web: str, task_id: str) -> dict:
    return requests.get(f"{web}/api/tasks/{task_id}", timeout=10).json()


def wait_for(web: str, task_id: str, states: set[str], timeout: float = 60) -> dict:
    def reached():
        try:
            task = record(web, task_id)
        except requests.RequestException:
            return None
        return task if task.get("state") in states else None

    return wait_until(reached, timeout=timeout, interval=0.2)


def submit_slow(web: str, seconds: int, name: str = "Ada") -> dict:
    response = requests.post(
        f"{web}/api/tasks/slow", json={"name": name, "seconds": seconds}, timeout=10
    )
    assert response.status_code == 202, response.text
    return response.json()


@pytest.mark.timeout(180)
def test_a_redis_restart_during_a_job_leaves_the_worker_up(redis_process):
    url = f"{redis_process.url}/0"
    with worker_process(url, "--concurrency=2") as worker, web_process(url) as web:
        task = submit_slow(web, 6)
        wait_for(web, task["id"], {"PROGRESS"}, timeout=30)
        redis_process.restart()
        # The first requests after the restart succeed: the clients reconnect.
        for _ in range(20):
            assert requests.get(f"{web}/api/tasks/{task['id']}", timeout=10).status_code == 200
        final = wait_for(web, task["id"], TERMINAL, timeout=90)
        assert worker.poll() is None, "the worker exited"
        assert final["state"] == "SUCCESS"
        after = submit_slow(web, 0)
        assert wait_for(web, after["id"], TERMINAL)["state"] == "SUCCESS"
        assert worker.poll() is None


@pytest.mark.timeout(240)
def test_a_killed_worker_tree_s_jobs_finish_on_another_worker_within_a_minute(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web:
        with worker_process(url, "--concurrency=2", "--hostname=doomed@%h") as doomed:
            tasks = [submit_slow(web, 8, name=f"job {n}") for n in range(4)]
            # Two run, and each process has fetched one more ahead.
            wait_until(
                lambda: sum(record(web, t["id"])["state"] == "PROGRESS" for t in tasks) == 2,
                timeout=30,
            )
            for process in psutil.Process(doomed.pid).children(recursive=True):
                process.kill()
            doomed.kill()
            killed_at = time.monotonic()
            running = next(t for t in tasks if record(web, t["id"])["state"] == "PROGRESS")
            # Until it runs again, the record says its worker is gone.
            warning = wait_until(lambda: record(web, running["id"]).get("warning"), timeout=40)
            assert "not been seen" in warning
        with worker_process(url, "--concurrency=2", "--hostname=rescuer@%h"):
            finished = [wait_for(web, t["id"], TERMINAL, timeout=90) for t in tasks]
            assert time.monotonic() - killed_at < 60 + 8 * 2  # requeued within 60 s, then run
        assert [task["state"] for task in finished] == ["SUCCESS"] * 4
        assert all(task["worker"].startswith("rescuer@") for task in finished)


@pytest.mark.timeout(240)
def test_a_job_longer_than_the_visibility_timeout_runs_once(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web, worker_process(url, "--concurrency=1"):
        with worker_process(url, "--concurrency=1", "--hostname=other@%h"):
            task = submit_slow(web, 45)  # the visibility timeout is 30 s
            final = wait_for(web, task["id"], TERMINAL, timeout=120)
    assert final["state"] == "SUCCESS"
    assert final["attempts"] == 1
