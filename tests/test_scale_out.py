"""Scale-out: several workers with their own names on one Redis share the work, and no
job runs twice; a worker on another machine (a network namespace) runs jobs queued here;
Redis, the web server, two workers and a client on five machines of their own
(docs/scaling.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import ROOT, RedisProcess, every_task, scaled, wait_until, web_process, worker_process

from devservers.embedded_redis import redis_command


@pytest.mark.timeout(300)
def test_two_named_workers_share_500_jobs_and_none_runs_twice(redis_process):
    """500 jobs at TEST_SCALE=1 (at least 50)."""
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
            ids = list(pool.map(submit, range(scaled(500, minimum=50))))

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


def require_namespaces() -> None:
    """Skip (fail, under CI) where network namespaces cannot be made."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        if os.environ.get("CI"):
            pytest.fail("the scale-out test needs root and iproute2 (ip netns)")
        pytest.skip("needs root and iproute2 (ip netns)")


@pytest.fixture
def other_machine():
    """A network namespace standing in for a second machine, joined to this one by a veth
    pair: this side is 10.231.0.1, the other 10.231.0.2. Yields the namespace's name."""
    require_namespaces()
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


@pytest.fixture
def five_machines():
    """Five network namespaces standing in for five machines on one switch (a bridge,
    each joined by a veth pair), at 10.232.0.1 to .5; this machine has no address there
    and its loopback is out of their reach. Yields the namespaces' names."""
    require_namespaces()
    suffix = os.getpid() % 10_000
    switch = f"jbr{suffix}"
    names = [f"jobs-host{n}-{suffix}" for n in range(1, 6)]
    ip("link", "add", switch, "type", "bridge")
    try:
        ip("link", "set", switch, "up")
        for n, name in enumerate(names, start=1):
            ip("netns", "add", name)
            here, there = f"vh{n}x{suffix}", f"vn{n}x{suffix}"
            ip("link", "add", here, "type", "veth", "peer", "name", there)
            ip("link", "set", here, "master", switch, "up")
            ip("link", "set", there, "netns", name)
            ip("netns", "exec", name, "ip", "addr", "add", f"10.232.0.{n}/24", "dev", there)
            ip("netns", "exec", name, "ip", "link", "set", there, "up")
            ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", switch], capture_output=True)


def on(machine: str, command: list[str], **popen: object) -> subprocess.Popen:
    """Start ``command`` on ``machine`` (in its network namespace)."""
    return subprocess.Popen(["ip", "netns", "exec", machine, *command], cwd=ROOT, **popen)


@pytest.mark.timeout(240)
def test_redis_web_two_workers_and_a_client_on_five_machines(five_machines, tmp_path):
    redis_host, web_host, worker_a, worker_b, client_host = five_machines
    redis_url = "redis://10.232.0.1:6379/0"
    web = "http://10.232.0.2:8000"
    env = {**os.environ, "REDIS_URL": redis_url, "APP_CONFIG": "testing"}
    (tmp_path / "redis").mkdir()
    redis = redis_command(6379, tmp_path / "redis", host="10.232.0.1",
                          log_file=tmp_path / "redis.log")  # fmt: skip
    # The production server (make serve's gunicorn.conf.py) on the web machine.
    gunicorn = [sys.executable, "-m", "gunicorn", "--log-level", "warning"]
    web_env = {**env, "HOST": "10.232.0.2", "PORT": "8000"}
    started = [on(redis_host, redis), on(web_host, gunicorn, env=web_env)]
    for machine, name in ((worker_a, "a"), (worker_b, "b")):
        started.append(on(machine, [
            sys.executable, "-m", "celery", "-A", "celery_worker", "worker",
            f"--hostname={name}@%h", "--pool=threads", "--concurrency=2",
            "--loglevel=WARNING", "--without-mingle",
        ], env=env))  # fmt: skip
    try:
        seen = subprocess.run(
            ["ip", "netns", "exec", client_host, sys.executable, "tests/remote_client.py",
             web, "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        for process in reversed(started):  # the workers first, Redis last
            process.terminate()
            process.wait(timeout=30)
    assert seen.returncode == 0, seen.stderr[-2000:]
    report = json.loads(seen.stdout)
    workers = report["ready"]["checks"]["consumers"]["workers"]
    assert {name.split("@")[0] for name in workers} == {"a", "b"}  # both remote workers
    final = report["final"]
    assert final["state"] == "SUCCESS" and final["worker"].split("@")[0] in {"a", "b"}
    # The record as the stream opened, then live changes from the remote worker.
    states = [event["state"] for event in report["events"]]
    assert "PROGRESS" in states[1:] and states[-1] == "SUCCESS", states
