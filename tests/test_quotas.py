"""Each owner's quotas: submissions a minute, jobs at once, bytes stored, longest job."""

from __future__ import annotations

import uuid

import pytest
from support import API_KEYS, forget_ledger, purge_queues

from my_app import create_app
from my_app.store.keys import task_key


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


EMAIL = {"to": ["ada@example.com"], "subject": "Hi", "text": "Hello"}


@pytest.fixture
def quota_app(database_url):
    """A keyed app nobody's worker consumes (a database of its own), with small quotas; each test's
    owners are new, so the per-minute counts start at zero."""
    suffix = uuid.uuid4().hex[:8]
    keys = API_KEYS.replace("alice:", f"alice{suffix}:").replace("bob:", f"bob{suffix}:")
    app = create_app(
        "testing", REDIS_URL=database_url, API_KEYS=keys,
        SUBMIT_RATE_LIMIT=0, MAX_ACTIVE_JOBS=0, MAX_INPUT_BYTES=2000, MAX_JOB_SECONDS=60,
    )  # fmt: skip
    yield app
    purge_queues(app)
    forget_ledger(app)


def as_key(app, name):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {name}-secret"
    return client


def test_submissions_a_minute_are_counted_per_owner(quota_app):
    quota_app.config["SUBMIT_RATE_LIMIT"] = 3
    alice, bob, root = (as_key(quota_app, name) for name in ("alice", "bob", "root"))
    for _ in range(3):
        assert alice.post("/api/tasks/slow", json={"name": "A"}).status_code == 202
    refused = alice.post("/api/tasks/slow", json={"name": "A"})
    assert refused.status_code == 429
    assert "at most 3 a minute for one owner" in refused.json["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert bob.post("/api/tasks/slow", json={"name": "B"}).status_code == 202  # his own budget
    for _ in range(4):
        assert root.post("/api/tasks/slow", json={"name": "R"}).status_code == 202  # admin


def test_jobs_at_once_are_capped_until_one_finishes(quota_app):
    quota_app.config["MAX_ACTIVE_JOBS"] = 2
    alice = as_key(quota_app, "alice")
    first, _ = (alice.post("/api/tasks/slow", json={"name": "A"}).json for _ in range(2))
    refused = alice.post("/api/tasks/slow", json={"name": "A"})
    assert refused.status_code == 429
    assert "2 jobs queued or running" in refused.json["message"]
    assert alice.post("/run-task/Ada").status_code == 429  # every way of queueing counts
    assert as_key(quota_app, "bob").post("/api/tasks/slow", json={"name": "B"}).status_code == 202

    assert alice.delete(first["links"]["self"]).status_code == 202  # cancelled: not active
    assert alice.post("/api/tasks/slow", json={"name": "A"}).status_code == 202


def test_inputs_larger_than_the_quota_are_413_and_nothing_is_queued(quota_app):
    alice = as_key(quota_app, "alice")
    refused = alice.post("/api/tasks/email", json={**EMAIL, "text": "x" * 3000})
    assert refused.status_code == 413
    assert "at most 2000 (MAX_INPUT_BYTES)" in refused.json["message"]
    assert alice.get("/api/tasks").json == []
    admin = as_key(quota_app, "root")
    assert admin.post("/api/tasks/email", json={**EMAIL, "text": "x" * 3000}).status_code == 202


def test_a_non_admin_cannot_ask_for_a_longer_job_than_the_quota(quota_app):
    alice = as_key(quota_app, "alice")
    body = alice.post("/api/tasks/slow", json={"name": "A", "seconds": 61})
    assert body.status_code == 422
    assert body.json["errors"]["json"]["seconds"] == ["At most 60 seconds (MAX_JOB_SECONDS)."]
    query = alice.post("/run-task/Ada?seconds=61")
    assert query.status_code == 422 and "seconds" in query.json["errors"]["query"]
    assert alice.post("/api/tasks/slow", json={"name": "A", "seconds": 60}).status_code == 202
    admin = as_key(quota_app, "root")
    assert admin.post("/api/tasks/slow", json={"name": "R", "seconds": 3600}).status_code == 202


def test_a_list_page_stays_small_whatever_the_inputs(quota_app):
    quota_app.config["MAX_INPUT_BYTES"] = 1024 * 1024
    alice = as_key(quota_app, "alice")
    text = "é" * 400_000  # 800 kB of UTF-8
    task = alice.post("/api/tasks/email", json={**EMAIL, "text": text}).json
    page = alice.get("/api/tasks?page_size=1")
    assert [t["id"] for t in page.json] == [task["id"]]
    assert len(page.data) < 4000 and "inputs" not in page.json[0]
    assert alice.get(task["links"]["self"]).json["inputs"]["text"] == text
    # Kept once, as UTF-8: not JSON-escaped at up to 12 bytes a character.
    stored = quota_app.extensions["redis_binary"].hget(task_key(task["id"]), "inputs")
    assert len(stored) < len(text.encode()) + 200
