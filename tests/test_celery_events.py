"""What monitors see: Celery's own events (Flower's source) and publish signals, for jobs
queued over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.signals import after_task_publish, before_task_publish
from support import forget_ledger, wait_for_state, wait_until, worker_process

from my_app import create_app


@contextmanager
def captured_events(celery_app) -> Iterator[list[dict]]:
    """Every Celery event on the app's broker while the block runs (Celery's EventReceiver)."""
    events: list[dict] = []
    with celery_app.connection_for_read() as connection:
        receiver = celery_app.events.Receiver(connection, handlers={"*": events.append})
        thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False})
        thread.start()
        try:
            with celery_app.events.default_dispatcher() as dispatcher:

                def heard_our_own_event() -> bool:
                    dispatcher.send("test-listening")
                    return any(event["type"] == "test-listening" for event in events)

                # The receiver listens once an event of our own comes back.
                wait_until(heard_our_own_event, timeout=20, interval=0.2)
            yield events
        finally:
            receiver.should_stop = True
            thread.join(timeout=10)


def types_of(events, task_id):
    return [event["type"] for event in events if event.get("uuid") == task_id]


@pytest.fixture(scope="module")
def monitored(redis_database):
    """The app and a worker with TASK_EVENTS on, as where a monitor watches: producers
    send task-sent and workers send task events."""
    database_url = redis_database()
    app = create_app("testing", REDIS_URL=database_url, TASK_EVENTS=True)
    # Prefork, the default pool: with the threads pool, task-started never arrived in two
    # CI runs out of five (cause not found; the other events did arrive).
    with worker_process(database_url, "--concurrency=2", env={"TASK_EVENTS": "true"}):
        # A first job end to end: the worker's event connection is up before a test listens.
        client = app.test_client()
        warm_up = client.post("/api/tasks/slow", json={"name": "warm-up", "seconds": 0})
        wait_for_state(client, warm_up.get_json()["links"]["self"], {"SUCCESS"}, 60)
        yield app
    forget_ledger(app)


def test_monitors_see_a_job_queued_over_http_sent_started_and_finished(monitored):
    client = monitored.test_client()
    with captured_events(monitored.extensions["celery"]) as events:
        task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0}).get_json()
        wait_for_state(client, task["links"]["self"], {"SUCCESS"}, 60)
        # Each kind of event travels on its own; they need not arrive in order.
        wanted = {"task-sent", "task-received", "task-started", "task-succeeded"}
        wait_until(lambda: wanted <= set(types_of(events, task["id"])), timeout=60)
    # Not in order: Celery sends task-sent after the publish (and its after_task_publish
    # handlers), so a fast worker's task-received can come first, by arrival and by clock.
    assert wanted <= set(types_of(events, task["id"]))


def test_a_cancelled_running_job_ends_revoked_for_monitors_too(monitored):
    client = monitored.test_client()
    with captured_events(monitored.extensions["celery"]) as events:
        task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 60}).get_json()
        wait_for_state(client, task["links"]["self"], {"PROGRESS"}, 60)
        client.delete(task["links"]["self"])
        wait_for_state(client, task["links"]["self"], {"REVOKED"}, 30)
        wait_until(lambda: "task-revoked" in types_of(events, task["id"]), timeout=60)
    assert "task-succeeded" not in types_of(events, task["id"])


def test_publish_signals_fire_for_api_submissions(idle_app):
    published = []

    def before(headers, **_):
        published.append(("before", headers["id"]))

    def after(headers, **_):
        published.append(("after", headers["id"]))

    before_task_publish.connect(before)
    after_task_publish.connect(after)
    try:
        task = idle_app.test_client().post("/api/tasks/slow", json={"name": "Ada"}).get_json()
    finally:
        before_task_publish.disconnect(before)
        after_task_publish.disconnect(after)
    assert published == [("before", task["id"]), ("after", task["id"])]


def test_events_are_off_by_default_and_a_monitor_turns_the_workers_on(redis_database):
    """Nobody watching, nobody pays: no event is published for a job; a monitor's
    ``enable_events`` broadcast (what Flower sends when it starts) turns the worker's on.

    Fails with ``TASK_EVENTS = True`` in Config (task-sent arrives), or with a worker that
    ignores the broadcast (nothing arrives after it).
    """
    database_url = redis_database()
    app = create_app("testing", REDIS_URL=database_url)
    celery_app = app.extensions["celery"]
    client = app.test_client()
    with worker_process(database_url, "--concurrency=1", "--pool=solo"):
        with captured_events(celery_app) as events:
            quiet = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0})
            wait_for_state(client, quiet.get_json()["links"]["self"], {"SUCCESS"}, 60)
            assert types_of(events, quiet.get_json()["id"]) == []
            wait_until(lambda: celery_app.control.enable_events(reply=True, timeout=1))
            watched = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0})
            task_id = watched.get_json()["id"]
            wait_until(lambda: "task-succeeded" in types_of(events, task_id), timeout=60)
        assert "task-sent" not in types_of(events, task_id)  # TASK_EVENTS turns that on
    forget_ledger(app)
