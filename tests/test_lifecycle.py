"""A task's life (my_app.lifecycle): a terminal state is final whoever stores after it,
one malformed task breaks no read, each queue gets only its own messages, and a worker
that stops cleanly stops counting at once."""

from __future__ import annotations

import json
import time

import requests
from billiard.exceptions import TimeLimitExceeded
from hypothesis import given, settings
from hypothesis import strategies as st
from support import forget_ledger, wait_for_state, wait_until, worker_process

from my_app import create_app
from my_app.records import TaskRecord, TaskState, decode_record, may_follow
from my_app.store.broker_queues import waiting_messages
from my_app.store.ledger import ledger_of
from my_app.tasks import slow_task


def test_a_terminal_state_is_followed_by_nothing():
    """The transition table: fails if a terminal state lists a successor."""
    for final in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED):
        for later in TaskState:
            assert may_follow(final, later) == (later == final)
    assert may_follow(TaskState.QUEUED, TaskState.STARTED)
    assert may_follow(TaskState.PROGRESS, TaskState.SUCCESS)
    assert may_follow(None, TaskState.FAILURE)


def test_celery_s_own_revoke_of_a_running_job_is_final(app, client, live_server):
    """Flower's Revoke button, or ``AsyncResult(id).revoke()``, on a running job: it stays
    REVOKED (never PROGRESS, never SUCCESS), stops at its next step, is listed only under
    REVOKED, and its event stream ends at REVOKED.

    Fails with the guard in ``LedgerRedisBackend.store_result`` removed (SUCCESS replaces
    REVOKED), or without the cancel flag the FINISHED script sets on REVOKED (the job runs
    to the end: its progress keeps moving).
    """
    seconds = 8
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": seconds}).get_json()
    url = task["links"]["self"]
    wait_for_state(client, url, {"PROGRESS"})
    stream = requests.get(f"{live_server}{task['links']['events']}", stream=True, timeout=30)
    app.extensions["celery"].AsyncResult(task["id"]).revoke()
    revoked = wait_for_state(client, url, {"REVOKED"}, timeout=10)
    states = [
        json.loads(line.removeprefix("data: "))["state"]
        for line in stream.iter_lines(decode_unicode=True)
        if line.startswith("data: ")
    ]
    assert states[-1] == "REVOKED" and "SUCCESS" not in states
    # For as long as the job would have run, and a little more, it stays REVOKED.
    deadline = time.monotonic() + seconds * app.config["SLOW_JOB_STEP_SECONDS"] + 2
    while time.monotonic() < deadline:
        assert client.get(url).get_json()["state"] == "REVOKED"
        time.sleep(0.2)
    last = client.get(url).get_json()
    assert last["progress"]["current"] <= revoked["progress"]["current"] + 1
    listed = {t["id"] for t in client.get("/api/tasks?state=REVOKED&page_size=100").get_json()}
    succeeded = {t["id"] for t in client.get("/api/tasks?state=SUCCESS&page_size=100").get_json()}
    assert task["id"] in listed and task["id"] not in succeeded


def test_a_job_whose_end_was_filed_elsewhere_stops_and_stores_nothing_more(app, client):
    """A pool process can outlive its end: at its hard time limit the worker's main
    process files FAILURE, and the pool process may report once more before it is
    killed. Its next step sees the end and stops, so Celery's result stays FAILURE.

    Fails without ``StopReason.FINISHED`` in the job's stop check (the job reports on,
    and Celery's result turns PROGRESS: seen under CPU load in
    ``test_a_hard_time_limit_kills_the_job...``).
    """
    seconds = 8
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": seconds}).get_json()
    url = task["links"]["self"]
    wait_for_state(client, url, {"PROGRESS"})
    backend = app.extensions["celery"].backend
    backend.mark_as_failure(task["id"], TimeLimitExceeded(1.5))  # as the main process does
    deadline = time.monotonic() + 3 * app.config["SLOW_JOB_STEP_SECONDS"] + 1
    while time.monotonic() < deadline:
        assert backend.get_task_meta(task["id"], cache=False)["status"] == "FAILURE"
        time.sleep(0.1)
    ended = client.get(url).get_json()
    assert ended["state"] == "FAILURE" and ended["error"]["type"] == "TimeLimitExceeded"


def test_a_late_progress_report_does_not_undo_a_filed_end(idle_app):
    """If the last report slips in between a pool process's check and its store, the
    end the ledger filed stands over it, with its error. Fails without the ledger's
    final state in ``record_state`` (the record reads PROGRESS, with no error)."""
    client = idle_app.test_client()
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 10}).get_json()
    backend = idle_app.extensions["celery"].backend
    backend.mark_as_failure(task["id"], TimeLimitExceeded(1.5))
    backend.store_result(task["id"], {"current": 3, "total": 10}, "PROGRESS")
    record = client.get(task["links"]["self"]).get_json()
    assert record["state"] == "FAILURE" and record["finished_at"]
    assert record["error"] == {
        "type": "TimeLimitExceeded",
        "message": "hard time limit exceeded (1.5 s): the job's process was killed",
    }
    failed = {t["id"] for t in client.get("/api/tasks?state=FAILURE&page_size=100").get_json()}
    assert task["id"] in failed


def test_a_success_filed_before_celery_stores_its_result_still_reads_running(idle_app):
    """The ledger files SUCCESS just before Celery stores the result: in between, the
    task shows its last progress, never SUCCESS with a progress report for a result.
    Fails when a filed SUCCESS stands over PROGRESS in ``record_state`` (seen in CI: a
    workflow's email step read SUCCESS with no ``accepted``)."""
    client = idle_app.test_client()
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 10}).get_json()
    idle_app.extensions["celery"].backend.store_result(
        task["id"], {"current": 9, "total": 10}, "PROGRESS"
    )
    ledger_of(idle_app).record_finished(task["id"], "SUCCESS")
    record = client.get(task["links"]["self"]).get_json()
    assert record["state"] == "PROGRESS" and record["result"] is None
    assert record["progress"]["current"] == 9


def test_a_task_with_mistyped_arguments_breaks_no_read(app, client, live_server):
    """A task queued by another producer with arguments of the wrong type (its progress
    total a string) fails on its own; every read that touches it answers.

    Fails when ``decode_record`` trusts stored progress (``with_percent`` raises TypeError:
    every read answers 500).
    """
    with app.app_context():
        result = slow_task.delay("x", "notanint")
    url = f"/api/tasks/{result.id}"
    task = wait_for_state(client, url, {"FAILURE"})
    assert task["error"]["type"] == "TypeError"
    assert client.get(f"/status/{result.id}").status_code == 200
    for listing in ("/api/tasks", "/api/tasks?state=FAILURE", "/api/tasks?kind=slow"):
        answer = client.get(listing)
        assert answer.status_code == 200, listing
        assert result.id in {t["id"] for t in answer.get_json()}, listing
    assert client.delete(url).status_code == 409  # finished: nothing to cancel
    assert client.post(f"{url}/retry").status_code == 202
    stream = requests.get(f"{live_server}{url}/events", timeout=10)
    assert stream.status_code == 200 and '"state":"FAILURE"' in stream.text
    assert client.get(f"/tasks/{result.id}").status_code == 200


@settings(max_examples=300, deadline=None)
@given(
    raw=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "kind",
                "owner",
                "inputs",
                "args",
                "progress",
                "attempts",
                "final",
                "task",
                "submitted_at",
                "started_at",
                "retry_at",
                "finished_at",
                "artifact:a.pdf",
                "queue",
            ]
        ),
        st.text(max_size=30) | st.sampled_from(['{"current": "3", "total": 0}', "[1]", "{}"]),
    ),
    meta=st.none()
    | st.fixed_dictionaries(
        {
            "status": st.sampled_from([*TaskState.__members__, "PENDING", "?"]),
            "result": st.none()
            | st.integers()
            | st.text(max_size=10)
            | st.dictionaries(st.sampled_from(["current", "total", "message"]), st.integers()),
        }
    ),
)
def test_the_decoder_reads_whatever_is_stored(raw, meta):
    """Any hash and any result meta decode to a record or to None, never an exception.

    Fails when any field's fallback is removed (hypothesis finds the value that raises).
    """
    record = decode_record(raw, meta)
    assert record is None or isinstance(record, TaskRecord)
    if record is not None:
        assert isinstance(record.as_dict(), dict)


def test_each_declared_exchange_and_routing_key_reach_one_queue(idle_app):
    """A task published with each exchange and routing key the config declares lands in
    that queue only.

    Fails with ``Queue(name)`` declared without its own exchange and routing key: both
    queues are bound to ``default`` by ``default``, and ``heavy`` gets a copy.
    """
    celery_app = idle_app.extensions["celery"]
    names = list(idle_app.config["TASK_QUEUES"])
    with celery_app.connection_for_write() as connection:
        for queue in celery_app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()
    for queue in celery_app.amqp.queues.values():
        before = waiting_messages(celery_app, names)
        with idle_app.app_context():
            slow_task.apply_async(
                ("Ada", 0), exchange=queue.exchange.name, routing_key=queue.routing_key
            )
        after = waiting_messages(celery_app, names)
        assert {name: after[name] - before[name] for name in names} == {
            name: int(name == queue.name) for name in names
        }


def test_a_job_sent_by_each_declared_route_runs_once(app, client):
    """With a worker on every queue, a job published by each declared exchange and
    routing key runs exactly once (``attempts`` 1). Fails as the test above does."""
    celery_app = app.extensions["celery"]
    sent = []
    for queue in celery_app.amqp.queues.values():
        with app.app_context():
            sent.append(
                slow_task.apply_async(
                    (f"via {queue.name}", 0),
                    exchange=queue.exchange.name,
                    routing_key=queue.routing_key,
                ).id
            )
    for task_id in sent:
        task = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
        time.sleep(0.5)  # a copy in another queue would start meanwhile
        assert client.get(f"/api/tasks/{task_id}").get_json()["attempts"] == 1, task


def test_a_worker_that_stops_cleanly_no_longer_counts_as_a_consumer(redis_database):
    """``/readyz`` says "not ready" as soon as the last worker has shut down warmly, not
    when its heartbeat (30 s) runs out.

    Fails without ``LeaseRenewal.shutdown`` (readyz stays 200 for up to 30 s).
    """
    database_url = redis_database()
    app = create_app("testing", REDIS_URL=database_url)
    client = app.test_client()
    with worker_process(database_url, "--pool=solo"):
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=60)
    stopped = time.monotonic()
    wait_until(lambda: client.get("/readyz").status_code == 503, timeout=10)
    assert time.monotonic() - stopped < 10
    forget_ledger(app)
