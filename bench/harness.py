"""The benchmark's moving parts: Redis, gunicorn, workers, load, and statistics."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

from devservers.embedded_redis import free_port, is_answering, redis_command

ROOT = Path(__file__).resolve().parent.parent
OURS_APP = "my_app:create_app()"
BASELINE_APP = "bench.baseline_app:create_app()"


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll until ``condition()`` holds; fail loudly after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence); yields its base URL."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    command = redis_command(port, data_dir, log_file=data_dir / "redis.log")
    command += ["--appendonly", "no"]
    server = subprocess.Popen(command)
    try:
        wait_until(lambda: is_answering("127.0.0.1", port), 10, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a process group we started: politely, then for good."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def environment(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment both apps run in; ours with limits too high to trigger (still
    counted): the submission rate and the jobs an owner may have at once."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "APP_CONFIG": "production",
        "SECRET_KEY": "benchmark-secret-key",
        "ALLOW_ANONYMOUS": "1",
        "FLASK_SUBMIT_RATE_LIMIT": "1000000000",
        "FLASK_MAX_ACTIVE_JOBS": "1000000000",
        **extra,
    }


@contextmanager
def gunicorn(
    app: str, redis_url: str, workers: int = 2, worker_class: str | None = "sync", **env: str
) -> Iterator[tuple[str, psutil.Process]]:
    """``gunicorn -w 2`` with the project's gunicorn.conf.py, ``env`` added to the
    environment; yields the URL and the master process.

    Request figures run sync workers, the same settings for both apps (the baseline is a
    plain Flask app); ``worker_class=None`` keeps the file's own (gevent, as ``make serve``).
    """
    port = free_port()
    worker = ["-k", worker_class, "--threads", "1"] if worker_class else []
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), *worker,
         "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning", app],
        cwd=ROOT, env=environment(redis_url, **env), start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(base), 30, f"gunicorn {app}")
        yield base, psutil.Process(server.pid)
    finally:
        stop(server)


def answers(base: str) -> bool:
    try:
        return requests.get(base + "/", timeout=1).status_code < 600
    except requests.RequestException:  # refused, or not answering yet
        return False


@contextmanager
def celery_worker(module: str, redis_url: str, queues: str, **env: str) -> Iterator[psutil.Process]:
    """A prefork worker, concurrency 2, in its own process, ``env`` added to the
    environment; ready when it yields its process."""
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", module, "worker", "--pool=prefork",
         "--concurrency=2", f"--queues={queues}", "--loglevel=INFO",
         "--without-mingle", "--without-gossip", f"--logfile={log}"],
        cwd=ROOT, env=environment(redis_url, **env), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: "ready." in log.read_text(errors="replace"), 60, f"worker {module}")
        yield psutil.Process(worker.pid)
    finally:
        stop(worker)
        log.unlink(missing_ok=True)


LATENCY_LINE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def load(
    url: str, seconds: float, body: str | None = None, connections: int = 8
) -> dict[str, float]:
    """Requests a second and p50/p99 latency (ms) of ``url`` under a closed-loop load.

    wrk when it is installed; otherwise a bounded Python load generator.
    """
    if shutil.which("wrk"):
        return wrk(url, seconds, body, connections)
    return python_load(url, seconds, body, connections)


def wrk(url: str, seconds: float, body: str | None, connections: int) -> dict[str, float]:
    """Run wrk (2 threads) and read its summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write(
                'wrk.method = "POST"\n'
                f"wrk.body = [[{body}]]\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
    try:
        output = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "-s", script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    if "Non-2xx" in output:
        raise RuntimeError(f"errors under load at {url}:\n{output}")
    latencies = {p: float(v) * UNITS[u] for p, v, u in LATENCY_LINE.findall(output)}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": latencies["50"],
        "p99": latencies["99"],
    }


def python_load(url: str, seconds: float, body: str | None, connections: int) -> dict[str, float]:
    """The fallback: ``connections`` threads with keep-alive connections, for ``seconds``."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if body is None:
                connection.request("GET", target)
            else:
                connection.request("POST", target, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                raise RuntimeError(f"{url} answered {response.status}")
            mine.append((time.perf_counter() - started) * 1000)
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "rps": len(latencies) / seconds,
        "requests": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    """The median of the rounds."""
    return statistics.median(values)


def rss_of_workers(master: psutil.Process) -> int:
    """The resident memory of gunicorn's worker processes, summed."""
    return sum(child.memory_info().rss for child in master.children())
