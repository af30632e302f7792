"""The make targets end to end: `make up` (the whole stack, stopped with Ctrl-C), `make serve`
and `make worker` with their settings from the environment, and `make flower`'s guard."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from support import answers, open_stream, streams_held, wait_until

from devservers.embedded_redis import free_port


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


ROOT = Path(__file__).resolve().parent.parent


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
            lambda: (
                (body := requests.get(status_url, timeout=5).json())["status"] == "SUCCESS" and body
            ),
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


@contextmanager
def make(
    target: str, env: dict[str, str], log: Path, inherit: bool = True
) -> Iterator[subprocess.Popen]:
    """``make <target>`` in a session of its own, stopped (its whole group) on exit; its
    environment is this one's plus ``env`` (only ``env`` when not ``inherit``)."""
    output = log.open("w")
    process = subprocess.Popen(
        ["make", target], cwd=ROOT, env={**os.environ, **env} if inherit else env, stdout=output,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            children = psutil.Process(process.pid).children(recursive=True)
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
            psutil.wait_procs(children, timeout=30)
        output.close()


def test_make_serve_and_make_worker_take_their_settings_from_the_environment(
    tmp_path, database_url
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"HOST": "127.0.0.1", "PORT": str(port), "REDIS_URL": database_url,
           "APP_CONFIG": "testing"}  # fmt: skip
    worker_env = {
        **env, "WORKER_NAME": "named@%h", "WORKER_QUEUES": "default,heavy",
        "WORKER_POOL": "threads", "WORKER_CONCURRENCY": "3", "WORKER_PREFETCH": "1",
    }  # fmt: skip
    with make("serve", env, tmp_path / "serve.log") as serve:
        with make("worker", worker_env, tmp_path / "worker.log"):
            wait_until(lambda: answers(f"{base}/healthz"), timeout=60, interval=0.3)
            accepted = requests.post(f"{base}/run-task/Ada?seconds=1", timeout=5)
            assert accepted.headers["Server"].startswith("gunicorn")
            record_url = f"{base}/api/tasks/{accepted.json()['task_id']}"
            with requests.get(f"{record_url}/events", stream=True, timeout=30) as stream:
                lines = []
                for line in stream.iter_lines(decode_unicode=True):
                    lines.append(line)
                    if '"state":"SUCCESS"' in line:
                        break
            task = requests.get(record_url, timeout=5).json()
            assert task["state"] == "SUCCESS" and task["worker"].startswith("named@")
        commands = " ".join(" ".join(p.cmdline()) for p in psutil.Process(serve.pid).children(True))
        assert "gunicorn" in commands
    worker_log = (tmp_path / "worker.log").read_text()
    assert "concurrency: 3 (thread)" in worker_log


def test_make_serve_holds_many_open_pages_and_lets_go_of_closed_ones(tmp_path, database_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"HOST": "127.0.0.1", "PORT": str(port), "REDIS_URL": database_url,
           "APP_CONFIG": "testing", "FLASK_EVENTS_HEARTBEAT_SECONDS": "300"}  # fmt: skip
    with make("serve", env, tmp_path / "serve.log") as serve:
        wait_until(lambda: answers(f"{base}/healthz"), timeout=60, interval=0.3)
        task = requests.post(f"{base}/api/tasks/slow", json={"name": "Ada", "seconds": 1},
                             timeout=5).json()  # fmt: skip
        tabs = [open_stream(base, "/api/tasks/events") for _ in range(100)]
        tabs += [open_stream(base, task["links"]["events"]) for _ in range(100)]
        for _ in range(20):  # the service answers while 200 pages listen
            assert requests.get(base + task["links"]["self"], timeout=5).status_code == 200
        servers = [p.pid for p in psutil.Process(serve.pid).children(recursive=True)
                   if "gunicorn" in " ".join(p.cmdline())]  # fmt: skip
        for tab in tabs:
            tab.close()
        # Without a heartbeat due for 300 s, only noticing the closed sockets frees them.
        wait_until(lambda: streams_held(servers, port) == 0, timeout=20, interval=0.5)
    assert "Using worker: gevent" in (tmp_path / "serve.log").read_text()


def test_make_flower_s_api_works_out_of_the_box_in_development(tmp_path, database_url):
    """Fails when make flower leaves Flower's API behind its default 401 (Flower 2 wants
    FLOWER_UNAUTHENTICATED_API for an API without a login)."""
    port = free_port()
    env = {"APP_CONFIG": "development", "REDIS_URL": database_url, "FLOWER_PORT": str(port)}
    env_without_flower = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    with make("flower", {**env_without_flower, **env}, tmp_path / "flower.log", inherit=False):
        url = f"http://127.0.0.1:{port}/api/workers"
        wait_until(lambda: answers(url), timeout=60, interval=0.5)
        assert requests.get(url, timeout=10).status_code == 200


def test_make_flower_needs_basic_auth_outside_development(tmp_path, database_url):
    env = {"APP_CONFIG": "production", "SECRET_KEY": "a-long-random-production-secret",
           "API_KEYS": "ops:ops-secret", "REDIS_URL": database_url}  # fmt: skip
    refused = subprocess.run(["make", "flower"], cwd=ROOT, env={**os.environ, **env},
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode != 0
    assert "set FLOWER_BASIC_AUTH" in refused.stderr

    port = free_port()
    guarded = {**env, "FLOWER_BASIC_AUTH": "ops:flower-secret", "FLOWER_PORT": str(port)}
    with make("flower", guarded, tmp_path / "flower.log"):
        url = f"http://127.0.0.1:{port}/api/workers"
        wait_until(lambda: answers(url), timeout=60, interval=0.5)
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("ops", "flower-secret"), timeout=10).status_code == 200
