"""The embedded Redis: found without installing anything, started only when needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support import wait_until

from devservers.embedded_redis import find_redis_server, free_port, is_answering

ROOT = Path(__file__).resolve().parent.parent


def test_a_redis_server_binary_is_found():
    path = find_redis_server()
    assert os.access(path, os.X_OK)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout


def test_make_redis_runs_a_private_redis_in_the_foreground(tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    env["REDIS_DATA_DIR"] = str(tmp_path)
    server = subprocess.Popen(
        ["make", "--no-print-directory", "redis"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: is_answering("127.0.0.1", port), timeout=30)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
    assert not is_answering("127.0.0.1", port)
    assert any(path.name.startswith("appendonly") for path in tmp_path.iterdir())


def test_if_absent_starts_nothing_when_redis_already_answers(redis_url, tmp_path):
    waiter = subprocess.Popen(
        [sys.executable, "-m", "devservers.embedded_redis", "--if-absent", "--url", redis_url,
         "--data-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "already answers" in waiter.stdout.readline()
        assert list(tmp_path.iterdir()) == []  # no data dir use: no server of its own
    finally:
        waiter.send_signal(signal.SIGTERM)
        assert waiter.wait(timeout=10) == 0
