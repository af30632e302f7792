"""The seed flow: /run-task queues the slow job, /status follows it through a real worker."""

from __future__ import annotations

import uuid

from support import explode, wait_for_state


def test_run_task_answers_202_with_a_status_url(client):
    response = client.post("/run-task/Ada?seconds=0")
    assert response.status_code == 202
    body = response.get_json()
    assert body["message"] == "Task received and sent to the worker"
    uuid.UUID(body["task_id"])
    assert body["status_url"] == f"/status/{body['task_id']}"
    assert response.headers["Location"] == body["status_url"]


def test_get_works_too_for_browsers(client):
    assert client.get("/run-task/Grace?seconds=0").status_code == 202


def test_status_goes_from_progress_to_success(client):
    status_url = client.post("/run-task/Ada?seconds=2").get_json()["status_url"]
    seen = wait_for_state(client, status_url, {"PROGRESS"})
    assert seen["progress"]["total"] == 2
    done = wait_for_state(client, status_url, {"SUCCESS"})
    assert done == {
        "task_id": status_url.rsplit("/", 1)[1],
        "status": "SUCCESS",
        "progress": {"current": 2, "total": 2, "percent": 100},
        "result": "Task completed for Ada!",
    }


def test_zero_seconds_returns_at_once(client):
    status_url = client.post("/run-task/Linus?seconds=0").get_json()["status_url"]
    done = wait_for_state(client, status_url, {"SUCCESS"})
    assert done["result"] == "Task completed for Linus!"


def test_head_queues_nothing(idle_app):
    response = idle_app.test_client().head("/run-task/Ada")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert idle_app.extensions["redis"].llen("default") == 0


def test_a_queued_task_is_reported_queued(idle_app):
    status_url = idle_app.test_client().post("/run-task/Ada").get_json()["status_url"]
    body = idle_app.test_client().get(status_url).get_json()
    assert body["status"] == "QUEUED"
    assert body["progress"] is None
    assert body["result"] is None


def test_failure_is_reported_with_its_message(app, client):
    task_id = explode.delay("the disk is full").id
    body = wait_for_state(client, f"/status/{task_id}", {"FAILURE"})
    assert body["error"] == {"type": "ValueError", "message": "the disk is full"}
    assert body["result"] is None
    assert "traceback" not in str(body).lower()


def test_bad_seconds_is_a_json_422(client):
    for bad in ("-1", "3601", "ten"):
        response = client.post(f"/run-task/Ada?seconds={bad}")
        assert response.status_code == 422
        body = response.get_json()
        assert body["code"] == 422
        assert "seconds" in body["errors"]["query"]


def test_a_name_too_long_is_a_json_422(client):
    response = client.post("/run-task/" + "x" * 201)
    assert response.status_code == 422
    assert "longer than 200" in response.get_json()["message"]


def test_unknown_and_malformed_ids_are_404(client):
    for task_id in (uuid.uuid4(), "not-a-task-id"):
        response = client.get(f"/status/{task_id}")
        assert response.status_code == 404
        assert response.get_json()["code"] == 404
