"""Redis with high availability: REDIS_URL names Redis Sentinels, and the web server and a
worker follow the primary through a failover (docs/scaling.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
import requests
from redis.sentinel import Sentinel
from support import RedisProcess, wait_until, web_process, worker_process

from devservers.embedded_redis import find_redis_server, free_port, is_answering

SERVICE = "jobs"


class SentinelProcess:
    """A Redis Sentinel watching the primary at ``primary_port`` under SERVICE; alone, it
    is the quorum, and it declares the primary down after a second without answers."""

    def __init__(self, data_dir: Path, primary_port: int) -> None:
        self.port = free_port()
        data_dir.mkdir(parents=True)
        config = data_dir / "sentinel.conf"  # Sentinel rewrites it: its own copy
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {data_dir}\n"
            f"logfile {data_dir / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        self.process = subprocess.Popen([find_redis_server(), str(config), "--sentinel"])
        wait_until(lambda: is_answering("127.0.0.1", self.port), timeout=10)
        self.client = redis.Redis(port=self.port, decode_responses=True)

    def primary_port(self) -> int:
        """The port of the primary Sentinel names now."""
        return Sentinel([("127.0.0.1", self.port)]).discover_master(SERVICE)[1]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def run_job(web: str, name: str) -> dict:
    """Queue a job over HTTP (retrying while the service says 503) and wait for its end."""

    def accepted() -> dict | None:
        answer = requests.post(f"{web}/api/tasks/slow", json={"name": name, "seconds": 0},
                               timeout=10)  # fmt: skip
        return answer.json() if answer.status_code == 202 else None

    task = wait_until(accepted, timeout=60, interval=0.5)

    def finished() -> dict | None:
        record = requests.get(f"{web}{task['links']['self']}", timeout=10)
        return record.json() if record.ok and record.json()["state"] == "SUCCESS" else None

    return wait_until(finished, timeout=60, interval=0.3)


@pytest.mark.timeout(240)
def test_the_service_runs_behind_sentinel_and_follows_a_failover(tmp_path):
    primary = RedisProcess(tmp_path / "primary")
    replica = RedisProcess(tmp_path / "replica",
                           options=("--replicaof", "127.0.0.1", str(primary.port)))  # fmt: skip
    sentinel = SentinelProcess(tmp_path / "sentinel", primary.port)
    url = f"sentinel://127.0.0.1:{sentinel.port}/0"
    env = {"REDIS_SENTINEL_SERVICE": SERVICE}
    try:
        with web_process(url, env=env) as web, worker_process(url, "--pool=threads", env=env):
            before = run_job(web, "before the failover")
            wait_until(lambda: redis.Redis(port=replica.port).info("replication")
                       ["master_link_status"] == "up", timeout=30)  # fmt: skip
            sentinel.client.execute_command("SENTINEL", "FAILOVER", SERVICE)
            wait_until(lambda: sentinel.primary_port() == replica.port, timeout=60)
            after = run_job(web, "after the failover")
            kept = requests.get(f"{web}{before['links']['self']}", timeout=10).json()
    finally:
        sentinel.stop()
        for server in (replica, primary):
            if server.process.poll() is None:
                server.stop()
    assert after["result"] == "Task completed for after the failover!"
    assert kept["state"] == "SUCCESS"  # the replica had it: nothing accepted was lost
