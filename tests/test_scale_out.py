"""Scale-out: several workers with their own names on one Redis share the work, and no
job runs twice; a worker on another machine (a network namespace) runs jobs queued here
(docs/scaling.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import ROOT, RedisProcess, every_task, wait_until, web_process, worker_process


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


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def other_machine():
    """A network namespace standing in for a second machine, joined to this one by a veth
    pair: this side is 10.231.0.1, the other 10.231.0.2. Yields the namespace's name."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        if os.environ.get("CI"):
            pytest.fail("the scale-out test needs root and iproute2 (ip netns)")
        pytest.skip("needs root and iproute2 (ip netns)")
    suffix = os.getpid() % 100_000
    namespace, here, there = f"jobs-test-{suffix}", f"vjh{suffix}", f"vjn{suffix}"
    ip("netns", "add", namespace)
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", namespace)
        ip("addr", "add", "10.231.0.1/24", "dev", here)
        ip("link", "set", here, "up")
        ip("netns", "exec", namespace, "ip", "addr", "add", "10.231.0.2/24", "dev", there)
        ip("netns", "exec", namespace, "ip", "link", "set", there, "up")
        ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        yield namespace
    finally:
        ip("netns", "del", namespace)  # takes the veth pair with it


@pytest.mark.timeout(180)
def test_a_worker_on_another_machine_runs_the_jobs(other_machine, tmp_path):
    redis = RedisProcess(tmp_path / "redis", host="10.231.0.1")
    url = f"{redis.url}/0"
    try:
        # The other machine reaches Redis over the link, and not this machine's loopback.
        probe = f"import socket; socket.create_connection(('127.0.0.1', {redis.port}), 1)"
        unreachable = subprocess.run(
            ["ip", "netns", "exec", other_machine, sys.executable, "-c", probe],
            capture_output=True,
        )  # fmt: skip
        assert unreachable.returncode != 0
        env = {**os.environ, "REDIS_URL": url, "APP_CONFIG": "testing"}
        worker = subprocess.Popen(
            ["ip", "netns", "exec", other_machine, sys.executable, "-m", "celery",
             "-A", "celery_worker", "worker", "--hostname=remote@%h", "--pool=threads",
             "--concurrency=4", "--loglevel=WARNING", "--without-mingle"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            with web_process(url) as web:
                ids = [
                    requests.post(f"{web}/api/tasks/slow", json={"name": f"r{n}", "seconds": 0},
                                  timeout=10).json()["id"]
                    for n in range(20)
                ]  # fmt: skip

                def finished() -> list[dict] | None:
                    tasks = [requests.get(f"{web}/api/tasks/{i}", timeout=5).json() for i in ids]
                    return tasks if all(t["state"] == "SUCCESS" for t in tasks) else None

                tasks = wait_until(finished, timeout=90, interval=0.5)
                ready = requests.get(f"{web}/readyz", timeout=10).json()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    finally:
        redis.stop()
    assert {task["worker"].split("@")[0] for task in tasks} == {"remote"}
    assert all(task["attempts"] == 1 for task in tasks)
    assert any(name.startswith("remote@") for name in ready["checks"]["consumers"]["workers"])
