"""Scale-out: several workers with their own names on one Redis share the work, and no
job runs twice (docs/scaling.md)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import wait_until, web_process, worker_process


def every_task(web: str) -> list[dict]:
    tasks, page = [], 1
    while batch := requests.get(f"{web}/api/tasks?page={page}&page_size=100", timeout=30).json():
        tasks += batch
        page += 1
    return tasks


@pytest.mark.timeout(300)
def test_two_named_workers_share_500_jobs_and_none_runs_twice(redis_process):
    url = f"{redis_process.url}/0"
    with (
        web_process(url) as web,
        worker_process(url, "--hostname=left@%h", "--pool=threads", "--concurrency=2"),
        worker_process(url, "--hostname=right@%h", "--pool=threads", "--concurrency=2"),
    ):

        def submit(n: int) -> str:
            job = {"name": f"job {n}", "seconds": 0}
            return requests.post(f"{web}/api/tasks/slow", json=job, timeout=30).json()["id"]

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(submit, range(500)))

        def all_succeeded() -> list[dict] | None:
            tasks = every_task(web)
            return tasks if all(task["state"] == "SUCCESS" for task in tasks) else None

        tasks = wait_until(all_succeeded, timeout=240, interval=1)
    assert sorted(task["id"] for task in tasks) == sorted(ids)
    assert all(task["attempts"] == 1 for task in tasks)  # none ran twice
    by_worker = Counter(task["worker"].split("@")[0] for task in tasks)
    assert set(by_worker) == {"left", "right"} and min(by_worker.values()) > 0, by_worker
