"""Any Celery broker and the documented Celery settings, end to end through real workers:
RabbitMQ, and Redis with a key prefix, priorities, compression and a result backend of
its own; a broker that fails loses nothing and claims nothing."""

from __future__ import annotations

import json

import pytest
import requests
from support import (
    forget_ledger,
    purge_queues,
    serving,
    wait_for_state,
    wait_until,
    worker_process,
)

from devservers.embedded_redis import free_port
from my_app import create_app
from my_app.store import keys
from my_app.tasks import slow_task


def read_events(response):
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


def follow_to_the_end(base_url, task):
    with requests.get(base_url + task["links"]["events"], stream=True, timeout=60) as stream:
        return list(read_events(stream))


@pytest.fixture(scope="module")
def rabbit_stack(redis_database, rabbitmq_url):
    """The app and a worker with RabbitMQ as broker; ledger and results in Redis."""
    database_url = redis_database()
    app = create_app("testing", REDIS_URL=database_url, CELERY_BROKER_URL=rabbitmq_url)
    with worker_process(
        database_url, "--pool=threads", "--concurrency=2",
        env={"CELERY_BROKER_URL": rabbitmq_url},
    ), serving(app) as base_url:  # fmt: skip
        yield app, base_url
    forget_ledger(app)


def test_rabbitmq_carries_run_task_to_success(rabbit_stack):
    app, base_url = rabbit_stack
    assert app.extensions["celery"].conf.broker_url.startswith("amqp://")
    accepted = requests.post(f"{base_url}/run-task/Ada?seconds=1", timeout=10)
    assert accepted.status_code == 202
    status = wait_for_state(app.test_client(), accepted.headers["Location"], {"SUCCESS"}, 60)
    assert status["result"] == "Task completed for Ada!"


def test_rabbitmq_carries_progress_over_the_event_stream(rabbit_stack):
    _, base_url = rabbit_stack
    task = requests.post(
        f"{base_url}/api/tasks/slow", json={"name": "Grace", "seconds": 2}, timeout=10
    ).json()
    states = [event["state"] for event in follow_to_the_end(base_url, task)]
    assert "PROGRESS" in states and states[-1] == "SUCCESS"


def test_rabbitmq_cancel_ends_revoked(rabbit_stack):
    app, base_url = rabbit_stack
    client = app.test_client()
    task = requests.post(
        f"{base_url}/api/tasks/slow", json={"name": "Linus", "seconds": 60}, timeout=10
    ).json()
    wait_for_state(client, task["links"]["self"], {"PROGRESS"}, 60)
    assert client.delete(task["links"]["self"]).status_code == 202
    error = wait_for_state(client, task["links"]["self"], {"REVOKED"}, 30)["error"]
    assert error["type"] == "TaskRevokedError"
    assert error["message"] in {"cancelled", "revoked"}  # ours, or Celery's revoked path


def settings_env(results_url):
    """Documented Celery settings, as environment variables, for the app and its worker."""
    return {
        "FLASK_CELERY__broker_transport_options__global_keyprefix": "svc:",
        "FLASK_CELERY__task_compression": "gzip",
        "FLASK_CELERY__result_backend": results_url,
        "FLASK_CELERY__result_backend_transport_options__global_keyprefix": "res:",
        "FLASK_CELERY__result_serializer": "yaml",
        "FLASK_CELERY__result_accept_content": '["json", "yaml"]',
    }


def test_prefixed_compressed_jobs_with_results_elsewhere_run_end_to_end(
    redis_database, monkeypatch
):
    database_url, results_url = redis_database(), redis_database()
    env = settings_env(results_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = create_app("testing", REDIS_URL=database_url)
    redis = app.extensions["redis"]
    task = app.test_client().post("/api/tasks/slow", json={"name": "Ada", "seconds": 1}).get_json()
    # The message waits under the broker's prefix, compressed as configured.
    [message] = redis.lrange("svc:default", 0, -1)
    assert json.loads(message)["headers"]["compression"] == "application/x-gzip"
    with worker_process(database_url, "--pool=threads", env=env), serving(app) as base_url:
        states = [event["state"] for event in follow_to_the_end(base_url, task)]
        assert "PROGRESS" in states and states[-1] == "SUCCESS"
    client = app.test_client()
    assert client.get(f"/status/{task['id']}").get_json()["result"] == "Task completed for Ada!"
    results = app.extensions["celery"].backend.client
    stored = results.get(f"res:celery-task-meta-{task['id']}")
    assert stored is not None and not stored.startswith(b"{")  # YAML, in the results' database
    forget_ledger(app)


def test_a_high_priority_job_overtakes_queued_low_priority_ones(redis_database):
    database_url = redis_database()
    app = create_app("testing", REDIS_URL=database_url)
    client = app.test_client()
    slow = app.extensions["celery"].tasks[slow_task.name]
    env = {"FLASK_CELERY__worker_prefetch_multiplier": "1"}
    with worker_process(database_url, "--pool=solo", env=env):
        blocker = slow.delay("blocker", 2)
        wait_for_state(client, f"/api/tasks/{blocker.id}", {"PROGRESS"}, 60)
        low = [slow.apply_async((f"low {n}", 0), priority=9) for n in range(3)]
        high = slow.apply_async(("high", 0), priority=0)  # on Redis, 0 is the highest
        started = {
            result.id: wait_for_state(client, f"/api/tasks/{result.id}", {"SUCCESS"}, 60)[
                "started_at"
            ]
            for result in [*low, high]
        }
    assert all(started[high.id] < started[result.id] for result in low)
    forget_ledger(app)


def test_a_broker_that_fails_gets_503_and_leaves_no_entry(redis_database):
    app = create_app(
        "testing",
        REDIS_URL=redis_database(),
        CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    forget_ledger(app)
    client = app.test_client()
    answer = client.post(
        "/api/tasks/slow", json={"name": "Ada"}, headers={"Idempotency-Key": "broker-down"}
    )
    assert answer.status_code == 503
    assert "nothing was queued" in answer.get_json()["message"]
    assert client.post("/run-task/Ada").status_code == 503
    redis = app.extensions["redis"]
    assert list(redis.scan_iter(f"{keys.PREFIX}task:*")) == []
    assert app.extensions["ledger"].task_ids(app.config["DEFAULT_OWNER"]) == []
    assert redis.get(keys.idempotency_key(app.config["DEFAULT_OWNER"], "broker-down")) is None
    assert client.get("/api/tasks").get_json() == []


def test_a_purged_task_shows_lost_not_queued(idle_app):
    idle_app.config["LOST_CHECK_AFTER_SECONDS"] = 0
    client = idle_app.test_client()
    url = client.post("/api/tasks/slow", json={"name": "Ada"}).headers["Location"]
    assert client.get(url).get_json()["state"] == "QUEUED"  # its message waits
    purge_queues(idle_app)  # what `celery purge` does
    # At once, or within the second a process reuses a queue's depth for.
    lost = wait_until(lambda: (task := client.get(url).get_json())["state"] == "LOST" and task)
    assert lost["error"]["type"] == "MessageLost"
    assert client.post(f"{url}/retry").status_code == 202
