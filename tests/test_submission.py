"""Submitting: idempotency keys, the rate limit, and a producer that leaks nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import ROOT, forget_ledger, purge_queues, scaled

from my_app import create_app
from my_app.store import keys


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


def queue_length(app, queue="default"):
    return app.extensions["redis"].llen(queue)


def test_the_same_idempotency_key_returns_the_same_task_and_enqueues_once(idle_app):
    client = idle_app.test_client()
    headers = {"Idempotency-Key": "order-1234"}
    body = {"name": "Ada", "seconds": 3}
    first = client.post("/api/tasks/slow", json=body, headers=headers)
    again = client.post("/api/tasks/slow", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert queue_length(idle_app) == 1
    assert client.post("/api/tasks/slow", json=body).status_code == 202  # no key: a new job
    assert queue_length(idle_app) == 2


def test_the_same_key_with_another_body_is_a_409(idle_app):
    client = idle_app.test_client()
    headers = {"Idempotency-Key": "order-1235"}
    client.post("/api/tasks/slow", json={"name": "Ada"}, headers=headers)
    response = client.post("/api/tasks/slow", json={"name": "Grace"}, headers=headers)
    assert response.status_code == 409
    assert "already used with a different request" in response.get_json()["message"]
    assert queue_length(idle_app) == 1


def test_concurrent_requests_with_one_key_queue_one_task(idle_app):
    body = {"name": "Ada", "seconds": 3}

    def submit(_):
        client = idle_app.test_client()
        return client.post("/api/tasks/slow", json=body, headers={"Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(submit, range(16)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(202) == 1
    assert set(codes) <= {200, 202, 409}  # 409: the first is still being queued; retry
    ids = {answer.get_json()["id"] for answer in answers if answer.status_code in (200, 202)}
    assert len(ids) == 1
    assert queue_length(idle_app) == 1


def test_an_idempotent_submission_runs_once(client, app):
    headers = {"Idempotency-Key": "run-once"}
    body = {"name": "Ada", "seconds": 0}
    ids = {client.post("/api/tasks/slow", json=body, headers=headers).get_json()["id"]
           for _ in range(3)}  # fmt: skip
    assert len(ids) == 1


@pytest.fixture
def limited_app(database_url):
    """An app allowing 3 submissions a minute per client address (a database of its own)."""
    app = create_app("testing", REDIS_URL=database_url, SUBMIT_RATE_LIMIT=3)
    app.extensions["redis"].flushdb()  # the limiter's counters too
    yield app
    purge_queues(app)
    forget_ledger(app)


def test_submissions_past_the_rate_limit_get_429(limited_app):
    client = limited_app.test_client()
    answers = [client.post("/run-task/Ada") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [202, 202, 202]
    assert answers[-1].headers["X-RateLimit-Limit"] == "3"
    assert answers[-1].headers["X-RateLimit-Remaining"] == "0"
    response = client.post("/api/tasks/slow", json={"name": "Ada"})
    assert response.status_code == 429
    body = response.get_json()
    assert (body["code"], body["status"]) == (429, "Too Many Requests")
    assert "at most 3 a minute" in body["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 61
    assert "X-RateLimit-Reset" in response.headers
    assert client.get("/run-task/Ada").status_code == 429  # a GET that queues counts too
    assert client.get(f"/status/{answers[0].get_json()['task_id']}").status_code == 200
    assert queue_length(limited_app) == 3


def test_the_limit_is_checked_before_an_upload_is_stored(limited_app):
    client = limited_app.test_client()
    for _ in range(3):
        client.post("/run-task/Ada")
    upload = {"file": (io.BytesIO(b"\x89PNG" + b"\0" * 1000), "photo.png"), "sizes": "64"}
    response = client.post("/api/tasks/thumbnail", data=upload, content_type="multipart/form-data")
    assert response.status_code == 429
    assert list(limited_app.extensions["redis"].scan_iter(f"{keys.PREFIX}upload:*")) == []


def test_x_forwarded_for_counts_only_behind_trusted_proxies(database_url):
    for trusted, expected in ((0, [202, 202, 429]), (1, [202, 202, 202])):
        app = create_app(
            "testing", REDIS_URL=database_url, SUBMIT_RATE_LIMIT=2, TRUSTED_PROXIES=trusted
        )
        app.extensions["redis"].flushdb()
        client = app.test_client()
        codes = [
            client.post("/run-task/Ada", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(3)
        ]
        assert codes == expected, f"TRUSTED_PROXIES={trusted}"
        purge_queues(app)
        forget_ledger(app)


@pytest.mark.timeout(300)
def test_thousands_of_submissions_leave_no_subscription_and_no_memory_behind(idle_app):
    """No result subscription, and no Python memory kept, per submission.

    Memory is Python's own count of live allocations (tracemalloc), not the process's
    RSS: RSS moved by the allocator's arenas by about 80 bytes a task, run to run, and a
    loaded CI machine pushed it past any bound that would still catch a leak. It is
    measured in a process of its own (tests/submission_memory.py): in the test process,
    what earlier tests left (a global tracer provider) counted too. Fails with
    Celery's producer subscription back (SubmitOnlyRedisBackend.on_task_call removed):
    each task keeps its pending result, about 150 bytes, and its channel subscribed."""
    redis = idle_app.extensions["redis"]
    warm_up, measured = scaled(2000, minimum=1000), scaled(3000, minimum=1500)
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("submission_memory.py")),
         idle_app.config["REDIS_URL"], str(warm_up), str(measured)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    grown, task_ids = report["grown"], report["task_ids"]

    backend = idle_app.extensions["celery"].backend
    channels = [backend.get_key_for_task(task_id) for task_id in task_ids]
    assert all(count == 0 for _, count in redis.pubsub_numsub(*channels))
    assert redis.pubsub_channels("celery-task-meta-*") == []
    # The only subscribers may be workers (database 0: their broadcast PSUBSCRIBE).
    subscribed = [
        client for client in redis.client_list()
        if client["db"] == "1" and (int(client["sub"]) or int(client["psub"]))
    ]  # fmt: skip
    assert subscribed == [], json.dumps(subscribed)
    # Measured: 20 to 70 bytes a task (fewer tasks, more), caches that stop growing
    # (werkzeug's URL cache); the subscription leak is about 380.
    assert grown < measured * 120, f"Python memory grew by {grown / measured:.0f} bytes a task"
    assert queue_length(idle_app) == warm_up + measured
