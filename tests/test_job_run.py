"""Time limits and redelivery, through a real prefork worker in its own process."""

from __future__ import annotations

import signal
import socket

import psutil
import pytest
from celery import Celery
from support import forget_ledger, wait_for_state, wait_until, worker_process

from my_app import create_app


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


@pytest.fixture(scope="module")
def stalling_smtp_server():
    """A port that accepts connections and never answers (the SMTP greeting never comes)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


@pytest.fixture(scope="module")
def prefork_worker(database_url, stalling_smtp_server):
    """``celery worker --pool=prefork --concurrency=1`` on a database of its own.

    Its slow job has no soft limit of its own (each test's message brings its limits);
    its email job gives up after a second, sending to a server that never answers.
    """
    limits = '{"slow": {"hard": 3720}, "email": {"soft": 1, "hard": 30}}'
    with worker_process(
        database_url, "--pool=prefork", "--concurrency=1", "--queues=default,heavy",
        env={"FLASK_TASK_TIME_LIMITS": limits, "MAIL_PORT": str(stalling_smtp_server)},
    ) as worker:  # fmt: skip
        yield worker


def submitter(database_url, **limits):
    app = create_app("testing", REDIS_URL=database_url, TASK_TIME_LIMITS={"slow": limits})
    forget_ledger(app)
    return app.test_client()


def submit_slow(client, seconds):
    return client.post("/api/tasks/slow", json={"name": "Ada", "seconds": seconds}).headers[
        "Location"
    ]


def test_a_soft_time_limit_ends_the_job_failed_and_cleaned_up(database_url, prefork_worker):
    client = submitter(database_url, soft=1.5, hard=30)
    url = submit_slow(client, seconds=10)
    task = wait_for_state(client, url, {"FAILURE"}, timeout=60)
    assert task["error"] == {"type": "JobTimeLimitExceeded", "message": "time limit exceeded"}
    assert task["progress"]["current"] < 3


def test_a_hard_time_limit_kills_the_job_and_the_worker_keeps_serving(database_url, prefork_worker):
    client = submitter(database_url, hard=1.5)
    url = submit_slow(client, seconds=10)
    try:
        task = wait_for_state(client, url, {"FAILURE"}, timeout=60)
    except AssertionError:
        raise AssertionError(f"never FAILURE: {client.get(url).get_json()}") from None
    assert task["error"]["type"] == "TimeLimitExceeded"
    assert "hard time limit exceeded (1.5 s)" in task["error"]["message"]
    after = wait_for_state(client, submit_slow(client, seconds=0), {"SUCCESS"}, timeout=60)
    assert after["result"] == "Task completed for Ada!"


def test_a_job_cancelled_on_a_prefork_worker_keeps_the_progress_it_made(
    database_url, prefork_worker
):
    """Celery's revoke marks a running job REVOKED in the worker's main process, which
    never saw the progress its pool process reported. Fails without
    ``LedgerRedisBackend.stored_progress`` (the REVOKED record's progress is None; the
    threads worker of the other tests shares one process, so it cannot show this)."""
    client = submitter(database_url)
    url = submit_slow(client, seconds=30)

    def past_two_steps() -> bool:
        return (client.get(url).get_json()["progress"] or {}).get("current", 0) >= 2

    wait_until(past_two_steps, timeout=60)
    assert client.delete(url).status_code == 202
    task = wait_for_state(client, url, {"REVOKED"}, timeout=30)
    assert 2 <= task["progress"]["current"] < 30
    assert task["progress"]["total"] == 30


def test_a_job_whose_process_dies_is_requeued_and_completes(database_url, prefork_worker):
    client = submitter(database_url)
    url = submit_slow(client, seconds=3)
    wait_for_state(client, url, {"PROGRESS"}, timeout=60)
    first_attempt = client.get(url).get_json()
    assert first_attempt["attempts"] == 1
    [pool_process] = psutil.Process(prefork_worker.pid).children()
    pool_process.send_signal(signal.SIGKILL)
    task = wait_for_state(client, url, {"SUCCESS"}, timeout=60)
    assert task["result"] == "Task completed for Ada!"
    assert task["attempts"] == 2  # the progress restarted with the second attempt
    assert task["started_at"] > first_attempt["started_at"]


def test_a_task_from_another_service_is_recorded_and_limited_by_the_worker(
    database_url, prefork_worker
):
    client = submitter(database_url)
    # A producer that knows nothing of this service: no ledger entry, no time limits.
    other_service = Celery("billing", broker=database_url, backend=database_url)
    result = other_service.send_task(
        "my_app.tasks.email_task",
        kwargs={"to": ["ada@example.com"], "subject": "Invoice", "text": "Attached."},
        queue="default",
    )
    task = wait_for_state(client, f"/api/tasks/{result.id}", {"FAILURE"}, timeout=60)
    assert task["kind"] == "email"
    assert task["inputs"]["subject"] == "Invoice"
    assert task["worker"] and task["received_at"]
    assert task["error"] == {"type": "JobTimeLimitExceeded", "message": "time limit exceeded"}
