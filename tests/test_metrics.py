"""/metrics: Prometheus's text format, jobs counted once across processes, protected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import ADMIN, ALICE, ROOT, answers, explode, wait_for_state, wait_until

from devservers.embedded_redis import free_port
from my_app import create_app


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_jobs_queues_workers_and_requests_are_measured(client):
    done = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0}).get_json()
    failed = explode.delay("boom").id
    wait_for_state(client, done["links"]["self"], {"SUCCESS"})
    failed_kind = wait_for_state(client, f"/api/tasks/{failed}", {"FAILURE"})["kind"]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = samples(response.get_data(as_text=True))
    assert found[("jobs_total", (("event", "queued"), ("kind", "slow")))] >= 1
    assert found[("jobs_total", (("event", "succeeded"), ("kind", "slow")))] >= 1
    assert found[("jobs_total", (("event", "failed"), ("kind", failed_kind)))] >= 1
    assert found[("job_run_seconds_count", (("kind", "slow"),))] >= 1
    assert ("queue_depth", (("queue", "heavy"),)) in found
    assert found[("workers_online", ())] >= 1
    assert found[("queue_consumers", (("queue", "default"),))] >= 1
    route = "/api/tasks/<uuid:task_id>"
    key = ("http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    assert found[key] >= 2


def test_the_oldest_waiting_job_ages_while_no_worker_takes_it(idle_app):
    client = idle_app.test_client()
    client.post(
        "/api/tasks/report", json={"title": "T", "sections": [{"heading": "H", "text": "x"}]}
    )

    def aged() -> dict | None:
        found = samples(client.get("/metrics").get_data(as_text=True))
        return (
            found if found[("queue_oldest_job_age_seconds", (("queue", "heavy"),))] > 0.5 else None
        )

    found = wait_until(aged, timeout=10, interval=0.2)
    assert found[("queue_depth", (("queue", "heavy"),))] >= 1


def test_metrics_need_an_admin_key_or_the_token(database_url):
    app = create_app(
        "testing", REDIS_URL=database_url, API_KEYS="alice:alice-secret,root:root-secret:admin",
        METRICS_TOKEN="scrape-token",
    )  # fmt: skip
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=ALICE).status_code == 403
    assert client.get("/metrics", headers=ADMIN).status_code == 200
    scrape = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert scrape.status_code == 200


@pytest.mark.timeout(120)
def test_several_gunicorn_workers_count_their_requests_together(database_url, tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": database_url, "APP_CONFIG": "testing",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # fmt: skip
    server = subprocess.Popen(
        # Each worker is replaced after 5 requests: 30 requests meet at least six workers,
        # and the counts of those gone must still add up.
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "sync", "--max-requests", "5",
         "-b", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"), timeout=30)
        for _ in range(30):
            wait_until(lambda: answers(f"{base}/healthz"), timeout=10)
        found = samples(requests.get(f"{base}/metrics", timeout=10).text)
        key = ("http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))
        assert found[key] >= 30  # every worker's, whichever one answered, gone or not
        pids = {path.name.split("_")[-1] for path in tmp_path.glob("counter_*.db")}
        assert len(pids) >= 6
    finally:
        server.terminate()
        server.wait(timeout=30)
