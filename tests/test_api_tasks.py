"""The task API through a real worker: submit, read, list, cancel, retry."""

from __future__ import annotations

import json
import time
import uuid

from support import (
    explode,
    flaky,
    forget_ledger,
    scaled,
    wait_for_state,
    wait_until,
    worker_process,
)

from my_app import lifecycle


def submit_slow(client, name="Ada", seconds=0, **kwargs):
    return client.post("/api/tasks/slow", json={"name": name, "seconds": seconds}, **kwargs)


def test_submit_answers_202_with_the_queued_task(client):
    response = submit_slow(client, seconds=1)
    assert response.status_code == 202
    task = response.get_json()
    assert response.headers["Location"] == f"/api/tasks/{task['id']}"
    assert task["kind"] == "slow"
    assert task["state"] == "QUEUED"
    assert task["inputs"] == {"name": "Ada", "seconds": 1}
    assert task["submitted_at"].endswith("+00:00")
    assert task["owner"] == "public"  # without API_KEYS, everyone is the default owner
    assert "artifacts" not in task  # shown as links
    assert task["links"] == {
        "self": f"/api/tasks/{task['id']}",
        "events": f"/api/tasks/{task['id']}/events",
        "cancel": f"/api/tasks/{task['id']}",
        "retry": f"/api/tasks/{task['id']}/retry",
    }


def test_a_task_moves_through_progress_to_success(client):
    url = submit_slow(client, seconds=2).headers["Location"]
    running = wait_for_state(client, url, {"PROGRESS"})
    assert running["started_at"] is not None
    assert running["progress"]["total"] == 2
    done = wait_for_state(client, url, {"SUCCESS"})
    assert done["result"] == "Task completed for Ada!"
    assert done["progress"] == {"current": 2, "total": 2, "percent": 100}
    assert done["error"] is None
    assert done["submitted_at"] <= done["started_at"] <= done["finished_at"]
    assert done["attempts"] == 1


def test_seconds_defaults_to_ten(idle_app):
    task = idle_app.test_client().post("/api/tasks/slow", json={"name": "Ada"}).get_json()
    assert task["inputs"]["seconds"] == 10


def test_a_task_nobody_consumes_stays_queued(idle_app):
    client = idle_app.test_client()
    url = submit_slow(client).headers["Location"]
    task = client.get(url).get_json()
    assert task["state"] == "QUEUED"
    assert task["started_at"] is None


def test_failure_carries_type_and_message_but_no_traceback(app, client):
    task_id = explode.delay("out of paper").id
    task = wait_for_state(client, f"/api/tasks/{task_id}", {"FAILURE"})
    assert task["error"] == {"type": "ValueError", "message": "out of paper"}
    assert task["finished_at"] is not None
    assert "Traceback" not in json.dumps(task)


def test_a_retrying_job_shows_retry_with_its_next_attempt(app, client):
    task_id = flaky.delay(1).id
    retrying = wait_for_state(client, f"/api/tasks/{task_id}", {"RETRY"})
    assert retrying["error"]["message"] == "the server is not up yet"
    assert retrying["retry_at"] > retrying["submitted_at"]
    done = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    assert done["result"] == 1


def test_unknown_and_malformed_ids_are_404(client):
    for path in (f"/api/tasks/{uuid.uuid4()}", "/api/tasks/12345", "/api/tasks/../etc"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["code"] == 404


def test_cancelling_a_running_task_stops_it_within_a_step(client):
    url = submit_slow(client, seconds=60).headers["Location"]
    wait_for_state(client, url, {"PROGRESS"})
    response = client.delete(url)
    assert response.status_code == 202
    task = wait_for_state(client, url, {"REVOKED"}, timeout=10)
    # "revoked" when Celery's own revoked path (the broadcast) got there first.
    assert task["error"]["type"] == "TaskRevokedError"
    assert task["error"]["message"] in {"cancelled", "revoked"}
    # Celery's own path stores REVOKED over the last PROGRESS, so there may be no progress.
    assert task["progress"] is None or task["progress"]["current"] < 10
    assert task["finished_at"] is not None


def test_a_task_cancelled_while_queued_never_starts(idle_app):
    client = idle_app.test_client()
    url = submit_slow(client, seconds=5).headers["Location"]
    assert client.delete(url).status_code == 202
    # A worker that comes up only now never heard the revoke broadcast: the ledger stops it.
    with worker_process(idle_app.config["REDIS_URL"], "--pool=threads"):
        task = wait_for_state(client, url, {"REVOKED"}, timeout=30)
    assert task["started_at"] is None
    assert task["progress"] is None


def test_cancelling_a_finished_task_is_409(client):
    url = submit_slow(client).headers["Location"]
    wait_for_state(client, url, {"SUCCESS"})
    response = client.delete(url)
    assert response.status_code == 409
    assert "already finished (SUCCESS)" in response.get_json()["message"]


def test_retry_runs_a_cancelled_task_again_as_a_new_task(client):
    url = submit_slow(client, name="Grace", seconds=60).headers["Location"]
    client.delete(url)
    original = wait_for_state(client, url, {"REVOKED"}, timeout=20)
    response = client.post(f"{url}/retry")
    assert response.status_code == 202
    retried = response.get_json()
    assert retried["id"] != original["id"]
    assert retried["inputs"] == original["inputs"]
    assert retried["links"]["retry_of"] == url
    assert response.headers["Location"] == retried["links"]["self"]
    client.delete(retried["links"]["cancel"])  # free the worker


def test_retry_of_a_failed_task_succeeds_when_the_cause_is_gone(app, client):
    task_id = explode.delay("boom").id
    wait_for_state(client, f"/api/tasks/{task_id}", {"FAILURE"})
    retried = client.post(f"/api/tasks/{task_id}/retry").get_json()
    assert retried["kind"] == explode.name  # a task without a kind shows its Celery name
    assert retried["links"]["retry_of"] == f"/api/tasks/{task_id}"
    failed_again = wait_for_state(client, retried["links"]["self"], {"FAILURE"})
    assert failed_again["error"]["message"] == "boom"


def test_retry_of_a_task_that_did_not_fail_is_409(client):
    url = submit_slow(client).headers["Location"]
    wait_for_state(client, url, {"SUCCESS"})
    response = client.post(f"{url}/retry")
    assert response.status_code == 409
    assert "only FAILURE, REVOKED or LOST" in response.get_json()["message"]


def test_list_is_newest_first_and_paginated(idle_app):
    client = idle_app.test_client()
    forget_ledger(idle_app)
    ids = [submit_slow(client, name=f"n{i}").get_json()["id"] for i in range(5)]
    response = client.get("/api/tasks?page=1&page_size=2")
    assert response.status_code == 200
    assert [task["id"] for task in response.get_json()] == ids[::-1][:2]
    pagination = json.loads(response.headers["X-Pagination"])
    assert pagination["total"] == 5
    assert pagination["total_pages"] == 3
    last_page = client.get("/api/tasks?page=3&page_size=2").get_json()
    assert [task["id"] for task in last_page] == [ids[0]]


def test_list_filters_by_state_and_kind(app, client):
    forget_ledger(app)
    done = submit_slow(client).get_json()
    failed = {"id": explode.delay("x").id}
    wait_for_state(client, done["links"]["self"], {"SUCCESS"})
    wait_for_state(client, f"/api/tasks/{failed['id']}", {"FAILURE"})
    by_state = client.get("/api/tasks?state=FAILURE")
    assert [task["id"] for task in by_state.get_json()] == [failed["id"]]
    assert json.loads(by_state.headers["X-Pagination"])["total"] == 1
    by_kind = client.get("/api/tasks?kind=slow").get_json()
    assert [task["id"] for task in by_kind] == [done["id"]]
    assert client.get("/api/tasks?state=SLEEPING").status_code == 422


def test_run_task_and_api_share_one_ledger(client):
    task_id = client.post("/run-task/Ada?seconds=0").get_json()["task_id"]
    task = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    assert task["kind"] == "slow"
    assert wait_until(lambda: client.get(f"/status/{task_id}").get_json()["status"] == "SUCCESS")


def hgetall_calls(app) -> int:
    stats = app.extensions["redis"].info("commandstats")
    return stats.get("cmdstat_hgetall", {}).get("calls", 0)


def retain_failures(app, count: int) -> None:
    """``count`` failed tasks in the ledger, stored the way a worker's backend stores them."""
    celery_app = app.extensions["celery"]
    for n in range(count):
        entry = lifecycle.new_entry(
            celery_app, "my_app.tasks.slow_task", str(uuid.uuid4()), (), {"n": n},
            owner=app.config["DEFAULT_OWNER"], queue="default",
        )  # fmt: skip
        app.extensions["ledger"].record_queued(entry, time.time())
        celery_app.backend.mark_as_failure(entry["id"], RuntimeError("retained"))


def test_the_queued_filter_reads_the_waiting_tasks_not_every_retained_one(idle_app):
    client = idle_app.test_client()
    retain_failures(idle_app, 50)
    queued = [submit_slow(client).get_json()["id"] for _ in range(3)]
    before = hgetall_calls(idle_app)
    page = client.get("/api/tasks?state=QUEUED")
    read = hgetall_calls(idle_app) - before
    assert sorted(task["id"] for task in page.get_json()) == sorted(queued)
    # The waiting tasks' entries (and the workers' heartbeats): not the 53 retained.
    assert read <= 3 + 1
    # An admin's filter reads everyone's active tasks the same way.
    everyone = idle_app.extensions["ledger"].unfinished_task_ids(None, ["default"])
    assert everyone == set(queued)


def test_a_state_filter_reads_only_its_page_whatever_is_retained(app, client):
    forget_ledger(app)
    count = scaled(60, minimum=12)
    failed = [explode.delay(f"x{n}").id for n in range(count)]
    done = [submit_slow(client, seconds=0).get_json()["id"] for _ in range(count)]
    for task_id in failed + done:
        wait_for_state(client, f"/api/tasks/{task_id}", {"FAILURE", "SUCCESS"})
    before = hgetall_calls(app)
    page = client.get("/api/tasks?state=FAILURE&page_size=5")
    read = hgetall_calls(app) - before
    assert [task["id"] for task in page.get_json()] == failed[::-1][:5]
    assert json.loads(page.headers["X-Pagination"])["total"] == count
    assert read <= 5 + 1  # the page's own entries (and heartbeats): not the 120 retained
    succeeded = client.get("/api/tasks?state=SUCCESS&page_size=100").get_json()
    assert sorted(task["id"] for task in succeeded) == sorted(done)
