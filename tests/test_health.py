"""Liveness and readiness, and the warning on a task no worker will take."""

from __future__ import annotations

import pytest
from support import wait_until, worker_process

from devservers.embedded_redis import free_port
from my_app import create_app


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


def test_healthz_answers_without_any_dependency():
    app = create_app("testing", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_is_ready_when_redis_the_broker_and_a_consumer_per_queue_answer(client):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    for name in ("redis", "broker", "consumers"):
        assert body["checks"][name]["ok"] and body["checks"][name]["latency_ms"] >= 0
    queues = {q for qs in body["checks"]["consumers"]["workers"].values() for q in qs}
    assert {"default", "heavy"} <= queues


def test_readyz_names_the_queue_no_worker_consumes(database_url):
    app = create_app("testing", REDIS_URL=database_url)
    client = app.test_client()
    with worker_process(database_url, "--queues=default", "--pool=threads"):
        body = wait_until(lambda: (b := client.get("/readyz").get_json())["checks"][
            "consumers"]["workers"] and b)  # fmt: skip
        assert client.get("/readyz").status_code == 503
        assert body["message"] == "no worker consumes queue heavy"
        report = client.post("/api/tasks/report", json={
            "title": "T", "sections": [{"heading": "H", "text": "x"}]}).get_json()  # fmt: skip
        waiting = client.get(report["links"]["self"]).get_json()
        assert waiting["warning"] == "No worker consumes queue heavy: the job waits until one does."
        slow = client.post("/api/tasks/slow", json={"name": "A", "seconds": 0}).get_json()
        done = wait_until(lambda: (t := client.get(slow["links"]["self"]).get_json())[
            "state"] == "SUCCESS" and t)  # fmt: skip
        assert "warning" not in done
        client.delete(report["links"]["self"])


def test_readyz_with_redis_down_is_a_503_naming_it():
    app = create_app("testing", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503
    assert (
        not body["checks"]["redis"]["ok"] and "ConnectionError" in body["checks"]["redis"]["error"]
    )
    assert body["status"] == "not ready"
