"""The suite's pytest plugin (``-p support`` in setup.cfg): a private Redis and the
databases it hands out, the app bound to it, a real Celery worker, RabbitMQ, Chromium,
clients, and the helpers tests share. Tests are marked by the real parts their fixtures
start (``pytest -m "not browser"``, ``-m worker``, ...)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from aiosmtpd.controller import Controller
from celery import Task, shared_task
from celery.contrib.testing.worker import start_worker
from flask import Flask, current_app
from flask.testing import FlaskClient
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from devservers.embedded_redis import free_port, is_answering, redis_command
from my_app import create_app
from my_app.store import keys
from my_app.worker.job_run import retry_job

#: Every app and process of a test session (an xdist worker) shares one artifact store
#: of its own, a directory that goes with the session.
ARTIFACT_DIR = tempfile.mkdtemp(prefix="artifacts-")
os.environ["ARTIFACT_STORE"] = ARTIFACT_DIR


@shared_task
def config_value(name: str) -> Any:
    """Return a setting of the app the worker runs tasks in."""
    return current_app.config[name]


@shared_task
def explode(message: str) -> None:
    """Fail with ``message``."""
    raise ValueError(message)


@shared_task(bind=True, max_retries=3)
def flaky(self: Task, failures: int) -> int:
    """Fail ``failures`` times, retrying a second later each time, then succeed."""
    if self.request.retries < failures:
        retry_job(self, ConnectionError("the server is not up yet"), countdown=1, max_retries=3)
    return self.request.retries


ROOT = Path(__file__).resolve().parent.parent

#: How much of each volume test's load to run: ``make test`` runs a fraction
#: (TEST_SCALE=0.2), ``.ci/run`` the whole (TEST_SCALE=1).
SCALE = float(os.environ.get("TEST_SCALE", "1"))


def scaled(count: int, minimum: int = 1) -> int:
    """``count`` scaled by TEST_SCALE, never below ``minimum``."""
    return max(minimum, round(count * SCALE))


#: Markers, from the fixtures a test uses: the real parts it starts or talks to.
MARKERS_BY_FIXTURE = {
    "redis_url": "redis",
    "redis_database": "redis",
    "redis_process": "redis",
    "celery_worker": "worker",
    "browser": "browser",
    "rabbitmq_url": "rabbitmq",
    "other_machine": "netns",
    "five_machines": "netns",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the real parts its fixtures (and theirs) start."""
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = MARKERS_BY_FIXTURE.get(fixture)
            if marker and not item.get_closest_marker(marker):
                item.add_marker(marker)


def wait_until(condition: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


#: Databases of the session's Redis: 0 is the session worker's, 1 the idle app's; the
#: rest are handed out by ``redis_database``, one per test that asks.
DATABASES = 64


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port, found the way ``make redis`` finds it."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("redis")
    command = redis_command(port, data_dir, log_file=data_dir / "redis.log")
    server = subprocess.Popen([*command, "--databases", str(DATABASES)])
    try:
        wait_until(lambda: is_answering("127.0.0.1", port), timeout=10)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def _free_databases() -> Iterator[int]:
    return iter(range(2, DATABASES))


@pytest.fixture(scope="session")
def redis_database(redis_url: str, _free_databases: Iterator[int]) -> Callable[[], str]:
    """Hands out databases of the session's Redis that no other test uses: each call
    returns the URL of a new one."""

    def new_database() -> str:
        number = next(_free_databases, None)
        assert number is not None, f"more than {DATABASES - 2} databases asked for"
        return f"{redis_url}/{number}"

    return new_database


class RedisProcess:
    """A redis-server of a test's own (AOF on, like ``make redis``) that the test can
    stop, restart, pause and resume: a real process, signalled."""

    def __init__(
        self,
        data_dir: Path,
        password: str | None = None,
        host: str = "127.0.0.1",
        options: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.password = password
        self.host = host
        self.options = options
        login = f":{password}@" if password else ""
        self.url = f"redis://{login}{host}:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start it and wait until it answers."""
        command = redis_command(
            self.port, self.data_dir, host=self.host, log_file=self.data_dir / "redis.log"
        )
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen([*command, *self.options])
        wait_until(lambda: is_answering(self.host, self.port), timeout=10)

    def stop(self) -> None:
        """Stop it the way an operator would (SIGTERM: the AOF is flushed)."""
        self.process.terminate()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop it and start it again on the same port and data."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused Redis go on (SIGCONT)."""
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, as a process the test can signal."""
    server = RedisProcess(tmp_path)
    yield server
    server.resume()
    if server.process.poll() is None:
        server.stop()


@contextmanager
def web_process(
    redis_url: str, env: dict[str, str] | None = None, output: Any = None
) -> Iterator[str]:
    """``python run.py`` (the web server) on a free port as a subprocess; yields its URL.
    Its output goes to the file ``output`` when given."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "APP_CONFIG": "testing", "PORT": str(port),
           **(env or {})}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "run.py"], cwd=ROOT, env=env, stdout=output, stderr=output
    )
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def require_binary(path: str, package: str) -> None:
    """Skip a test whose server binary is missing; under CI (``.ci/run`` installs it), fail."""
    if not shutil.which(path):
        message = f"{path} is missing: apt-get install {package} (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


RABBITMQ_SERVER = "/usr/sbin/rabbitmq-server"


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A private RabbitMQ node (Debian's rabbitmq-server) on free ports; yields its AMQP URL.

    The node runs as the ``rabbitmq`` user, so its folders belong to that user, outside
    pytest's own temporary folder (which only root may enter).
    """
    require_binary(RABBITMQ_SERVER, "rabbitmq-server")
    base = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
    base.chmod(0o755)
    port, dist_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    for folder in ("mnesia", "log"):
        (base / folder).mkdir()
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    env = {
        **os.environ,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_NODENAME": f"rabbit_test_{port}@localhost",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
    }
    log = (base / "server.log").open("w")
    server = subprocess.Popen(
        [RABBITMQ_SERVER], env=env, cwd=base, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: is_listening(port), timeout=60, interval=0.25)
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        # The Erlang VM runs beneath su and shell wrappers: stop the whole tree.
        processes = psutil.Process(server.pid).children(recursive=True)
        for process in processes:
            if process.name().startswith("beam"):
                process.terminate()
        psutil.wait_procs(processes, timeout=20)
        server.wait(timeout=20)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def is_listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def flower_process(redis_url: str) -> Iterator[str]:
    """Flower (``celery -A celery_worker flower``) on ``redis_url``; yields its base URL."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "APP_CONFIG": "testing",
           "FLOWER_UNAUTHENTICATED_API": "true"}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "celery_worker", "flower",
               "--address=127.0.0.1", f"--port={port}", "--logging=warning"]  # fmt: skip
    flower = subprocess.Popen(command, cwd=ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base_url}/healthcheck"), timeout=60, interval=0.25)
        yield base_url
    finally:
        flower.send_signal(signal.SIGTERM)
        try:
            flower.wait(timeout=20)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()


def answers(url: str) -> bool:
    """Whether ``url`` answers below 500 (not yet, while a server starts or replaces a
    process)."""
    try:
        return requests.get(url, timeout=5).status_code < 500
    except requests.RequestException:
        return False


def open_stream(base_url: str, path: str) -> socket.socket:
    """An event stream read the way a browser tab holds one: a plain socket that has read
    the answer's head and first event, so closing it sends a FIN, as closing a tab does."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    received = b""
    while b": connected" not in received and b"data: " not in received:
        chunk = connection.recv(65536)
        assert chunk, f"the stream {path} closed: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    connection.settimeout(0.2)
    try:  # read what else has arrived: a socket closed with unread bytes sends a reset
        while connection.recv(65536):
            pass
    except TimeoutError:
        pass
    return connection


def streams_held(pids: list[int], port: int) -> int:
    """How many connections the server processes ``pids`` still hold on ``port`` after
    their clients hung up (CLOSE_WAIT: the client's FIN arrived, the server has not
    closed its side)."""
    return sum(
        1
        for pid in pids
        for connection in psutil.Process(pid).net_connections()
        if connection.laddr and connection.laddr.port == port and connection.status == "CLOSE_WAIT"
    )


def every_task(base_url: str) -> list[dict]:
    """Every task the service lists, page by page."""
    tasks, page = [], 1
    while batch := requests.get(
        f"{base_url}/api/tasks?page={page}&page_size=100", timeout=30
    ).json():
        tasks += batch
        page += 1
    return tasks


#: The keys of the keyed app: two owners and an admin.
API_KEYS = "alice:alice-secret,bob:bob-secret,root:root-secret:admin"
ALICE = {"Authorization": "Bearer alice-secret"}
BOB = {"Authorization": "Bearer bob-secret"}
ADMIN = {"Authorization": "Bearer root-secret"}

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium; missing, it fails the run under CI and skips elsewhere."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def worker_app(redis_url: str) -> Flask:
    """The app that the session's worker serves, on database 0."""
    return create_app("testing", REDIS_URL=f"{redis_url}/0", GREETING="hello from the test app")


@pytest.fixture(scope="session")
def celery_worker(worker_app: Flask) -> Iterator[Any]:
    """A real Celery worker consuming the app's queues, in a thread of the test process."""
    celery_app = worker_app.extensions["celery"]
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        queues=["default", "heavy"],
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


@pytest.fixture
def app(worker_app: Flask, celery_worker: Any) -> Flask:
    """The app, with a worker serving it."""
    celery_app = worker_app.extensions["celery"]
    # Every Celery() becomes the current app; task proxies must reach this one.
    celery_app.set_default()
    celery_app.set_current()
    return worker_app


@pytest.fixture
def keyed_app(app: Flask, redis_url: str) -> Iterator[Flask]:
    """The app with API keys (alice, bob, and root the admin) on the session worker's
    database, so the worker runs what it queues."""
    keyed = create_app(
        "testing", REDIS_URL=f"{redis_url}/0", API_KEYS=API_KEYS, SECRET_KEY="test-secret",
        EVENTS_HEARTBEAT_SECONDS=0.5,
    )  # fmt: skip
    yield keyed
    celery_app = app.extensions["celery"]  # back to the worker's app for later tests
    celery_app.set_default()
    celery_app.set_current()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def idle_app(redis_url: str) -> Iterator[Flask]:
    """An app whose queue nobody consumes (database 1): its tasks stay QUEUED."""
    app = create_app("testing", REDIS_URL=f"{redis_url}/1")
    yield app
    purge_queues(app)
    forget_ledger(app)


def purge_queues(app: Flask) -> None:
    """Drop every message waiting in the app's queues."""
    with app.extensions["celery"].connection_for_write() as connection:
        for queue in ("default", "heavy"):
            connection.default_channel.queue_purge(queue)


@contextmanager
def worker_process(
    redis_url: str, *options: str, env: dict[str, str] | None = None, output: Any = None
) -> Iterator[subprocess.Popen]:
    """A ``celery -A celery_worker worker`` subprocess on ``redis_url``, stopped on exit;
    its output goes to the file ``output`` when given."""
    command = ["worker", "--loglevel=WARNING", "--without-mingle", "--without-gossip", *options]
    with celery_process(redis_url, command, env or {}, output) as worker:
        yield worker


@contextmanager
def beat_process(
    redis_url: str, *, env: dict[str, str] | None = None, output: Any = None
) -> Iterator[subprocess.Popen]:
    """``celery -A celery_worker beat`` (redbeat's scheduler) on ``redis_url``, looking at
    its schedule every second, stopped on exit."""
    env = {"FLASK_BEAT_MAX_LOOP_SECONDS": "1", **(env or {})}
    with celery_process(redis_url, ["beat", "--loglevel=INFO"], env, output) as beat:
        yield beat


@contextmanager
def celery_process(
    redis_url: str, command: list[str], env: dict[str, str], output: Any
) -> Iterator[subprocess.Popen]:
    """``celery -A celery_worker <command>`` on ``redis_url`` (the testing config), ended
    on exit: SIGTERM, then SIGKILL after 30 s."""
    env = {**os.environ, "REDIS_URL": redis_url, "APP_CONFIG": "testing", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_worker", *command],
        cwd=ROOT, env=env, stdout=output, stderr=output,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RecordingSmtpHandler:
    """An aiosmtpd handler that keeps what it receives, or refuses it as told."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.data_attempts = 0
        self.data_reply: str | None = None  # e.g. "554 5.7.1 rejected" to refuse

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(app: Flask) -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free port, which the app's worker sends to."""
    handler = RecordingSmtpHandler()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    previous = {name: app.config[name] for name in ("MAIL_SERVER", "MAIL_PORT")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=handler.port)
    yield handler
    app.config.update(previous)
    controller.stop()


def forget_ledger(app: Flask) -> None:
    """Delete the app's ledger (not Celery's queues: FLUSHDB would drop kombu's bindings)."""
    client = app.extensions["redis"]
    for key in client.scan_iter(f"{keys.PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a free port, in a thread; yields its base URL."""
    with serving(app) as base_url:
        yield base_url


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` over real HTTP on a free port, in a thread; yields its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def wait_for_state(client: FlaskClient, url: str, states: set[str], timeout: float = 30) -> dict:
    """GET ``url`` until the task's state is one of ``states``; return the body."""

    def reached() -> dict | None:
        body = client.get(url).get_json()
        state = body.get("state", body.get("status"))
        return body if state in states else None

    return wait_until(reached, timeout=timeout)


#: The states an accepted task ends in.
TERMINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}


def task_record(web: str, task_id: str) -> dict:
    """The task's record, read over HTTP from the service at ``web``."""
    return requests.get(f"{web}/api/tasks/{task_id}", timeout=10).json()


def wait_for_task(web: str, task_id: str, states: set[str], timeout: float = 60) -> dict:
    """Read the task over HTTP until its state is one of ``states``; a refused read
    (a server restarting) is read again."""

    def reached():
        try:
            task = task_record(web, task_id)
        except requests.RequestException:
            return None
        return task if task.get("state") in states else None

    return wait_until(reached, timeout=timeout, interval=0.2)


def submit_slow_job(web: str, seconds: int, name: str = "Ada") -> dict:
    """Queue a slow job over HTTP; its record (asserting the 202)."""
    response = requests.post(
        f"{web}/api/tasks/slow", json={"name": name, "seconds": seconds}, timeout=10
    )
    assert response.status_code == 202, response.text
    return response.json()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's artifact store."""
    shutil.rmtree(ARTIFACT_DIR, ignore_errors=True)
