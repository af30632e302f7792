"""`make up` end to end: the whole stack on free ports, used over HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import requests
from conftest import wait_until

from devservers.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.ConnectionError:
        return False


def test_make_up_runs_the_stack_and_ctrl_c_leaves_nothing_behind(tmp_path):
    port, redis_port, mail_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "REDIS_DATA_DIR": str(tmp_path / "redis"),
        "WORKER_CONCURRENCY": "1",
        "MAIL_PORT": str(mail_port),
        "MAIL_SINK_DIR": str(tmp_path / "mail"),
    }
    env.pop("MAIL_SERVER", None)
    log = (tmp_path / "stack.log").open("w")
    # A session of its own, like a terminal's foreground job: Ctrl-C reaches its group.
    stack = subprocess.Popen(
        ["make", "up"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: answers(f"{base}/api/openapi.json"), timeout=60, interval=0.3)
        accepted = requests.post(f"{base}/run-task/Ada?seconds=1", timeout=5)
        assert accepted.status_code == 202
        status_url = base + accepted.headers["Location"]
        done = wait_until(
            lambda: (body := requests.get(status_url, timeout=5).json())["status"] == "SUCCESS"
            and body,
            timeout=60,
        )
        assert done["result"] == "Task completed for Ada!"
        email = requests.post(
            f"{base}/api/tasks/email",
            json={"to": ["ada@example.com"], "subject": "From the stack", "text": "Hi"},
            timeout=5,
        )
        email_url = base + email.headers["Location"]
        wait_until(lambda: requests.get(email_url, timeout=5).json()["state"] == "SUCCESS")
        [saved] = (tmp_path / "mail").glob("*.eml")
        assert "Subject: From the stack" in saved.read_text()
        processes = psutil.Process(stack.pid).children(recursive=True)
        commands = " ".join(" ".join(p.cmdline()) for p in processes)
        for part in ("redis-server", "celery", "run.py", "devservers.mail_sink"):
            assert part in commands

        os.killpg(stack.pid, signal.SIGINT)
        stack.wait(timeout=60)
        _, alive = psutil.wait_procs(processes, timeout=30)
        assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"
        assert any(path.name.startswith("appendonly") for path in (tmp_path / "redis").iterdir())
    finally:
        if stack.poll() is None:
            for process in psutil.Process(stack.pid).children(recursive=True):
                process.kill()
            os.killpg(stack.pid, signal.SIGKILL)
        log.close()
