"""Workflows: steps of the job kinds run as one Celery canvas on a real worker, read,
cancelled and retried as one thing; a canvas queued from a shell reads the same way."""

from __future__ import annotations

import email
import gc
import io
import uuid

import pytest
from celery import chain, chord, group
from PIL import Image
from pypdf import PdfReader
from support import wait_for_state, wait_until

from my_app.records import TERMINAL_STATES
from my_app.tasks import slow_task

pytestmark = pytest.mark.timeout(120)


def upload_image(client) -> str:
    """POST /api/uploads with a PNG; its upload id."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), "orange").save(buffer, "PNG")
    data = {"file": (io.BytesIO(buffer.getvalue()), "photo.png")}
    response = client.post("/api/uploads", data=data, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["kind"] == "image"
    return response.get_json()["upload_id"]


def photo_report(upload_id: str, to: str = "team@example.com") -> dict:
    """The shipped example: thumbnails of a photo, a PDF report that shows them, an
    email with the report attached."""
    return {
        "name": "Photo report",
        "steps": [
            {"name": "thumbnails", "kind": "thumbnail",
             "inputs": {"upload_id": upload_id, "sizes": [64, 128]}},
            {"name": "report", "kind": "report", "uses": ["thumbnails"],
             "inputs": {"title": "Photos", "sections": [{"heading": "Today", "text": "Two."}]}},
            {"name": "mail", "kind": "email", "uses": ["report"],
             "inputs": {"to": [to], "subject": "Your report", "text": "Attached."}},
        ],
    }  # fmt: skip


def test_thumbnails_then_a_report_then_an_email_run_as_one_workflow(client, smtp_server):
    """The example end to end. Fails without the canvas (steps not chained: the report
    would run before the thumbnails exist), without ``uses`` (no images in the PDF, no
    attachment), or without the workflow index (404)."""
    response = client.post("/api/workflows", json=photo_report(upload_image(client)))
    assert response.status_code == 202, response.get_json()
    workflow = response.get_json()
    assert response.headers["Location"] == workflow["links"]["self"]
    assert [step["name"] for step in workflow["steps"]] == ["thumbnails", "report", "mail"]
    assert workflow["steps"][1]["after"] == ["thumbnails"]
    # Every step exists from the 202 on: the chain's later steps, waiting.
    assert all(step["task"] is not None for step in workflow["steps"])
    assert workflow["steps"][2]["task"]["waiting_for"] == workflow["steps"][1]["task_id"]
    done = wait_for_state(client, workflow["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
    assert done["state"] == "SUCCESS", [step["task"]["error"] for step in done["steps"]]
    assert done["progress"] == {"current": 3, "total": 3, "percent": 100}
    assert done["finished_at"]
    thumbnails, report, mail = (step["task"] for step in done["steps"])
    assert thumbnails["workflow"] == workflow["id"]
    assert thumbnails["links"]["workflow"] == workflow["links"]["self"]
    pdf = PdfReader(io.BytesIO(client.get(report["links"]["artifacts"]["report.pdf"]).data))
    assert sum(len(page.images) for page in pdf.pages) == 2
    [envelope] = smtp_server.envelopes
    message = email.message_from_bytes(envelope.content)
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_payload(decode=True).startswith(b"%PDF")
    assert mail["result"]["accepted"] == ["team@example.com"]


def test_a_chain_queued_from_a_shell_reads_as_a_workflow(client):
    """A canvas from outside the API is one workflow under its first task's id (Celery's
    root_id). Fails when the lifecycle does not file tasks by root_id (404)."""
    result = chain(slow_task.si("one", 0), slow_task.si("two", 0)).apply_async()
    first_id = result.parent.id
    workflow = wait_for_state(client, f"/api/workflows/{first_id}", {"SUCCESS"}, timeout=30)
    assert [step["task_id"] for step in workflow["steps"]] == [first_id, result.id]
    assert [step["task"]["result"] for step in workflow["steps"]] == [
        "Task completed for one!",
        "Task completed for two!",
    ]


def test_a_shell_chain_holding_a_group_reads_as_its_tasks_only(client):
    """Celery makes ``chain(a, group(b, c), d)`` a chain holding a chord, whose own id is
    no task that runs. Fails when the lifecycle files that chord as a step: a
    ``celery.chord`` task stays QUEUED for ever, and so does the workflow."""
    first_id = str(uuid.uuid4())
    chain(
        slow_task.si("first", 0).set(task_id=first_id),
        group(slow_task.si("left", 0), slow_task.si("right", 0)),
        slow_task.si("last", 0),
    ).apply_async()
    workflow = wait_for_state(client, f"/api/workflows/{first_id}", {"SUCCESS"}, timeout=30)
    results = sorted(step["task"]["result"] for step in workflow["steps"])
    assert results == sorted(
        f"Task completed for {name}!" for name in ("first", "left", "right", "last")
    )
    listed = client.get("/api/tasks?state=QUEUED&page_size=100").get_json()
    assert not [task for task in listed if task.get("workflow") == first_id]


def test_a_shell_chord_given_a_root_id_reads_as_one_workflow(client):
    """A bare chord has no common root; given one (the README's recipe), its header and
    callback are one workflow under that id. Fails when the lifecycle files a canvas's
    tasks under anything but Celery's ``root_id`` (seen failing with ``workflow_of``
    answering the task's own id: 404)."""
    root = str(uuid.uuid4())
    header = [slow_task.si("left", 0), slow_task.si("right", 0)]
    chord(header, slow_task.si("callback", 0)).apply_async(root_id=root)
    workflow = wait_for_state(client, f"/api/workflows/{root}", {"SUCCESS"}, timeout=30)
    results = sorted(step["task"]["result"] for step in workflow["steps"])
    assert results == [f"Task completed for {name}!" for name in ("callback", "left", "right")]


def test_cancelling_a_workflow_stops_every_step_not_done(client):
    """Two steps run side by side, a third waits for them: cancel stops both running
    steps, and the third never runs. Fails when cancel reaches only one step (the other
    runs on to SUCCESS: seen failing with cancel_workflow stopping at its first step)."""

    def slow(name: str, seconds: int) -> dict:
        return {"name": name, "kind": "slow", "inputs": {"name": name, "seconds": seconds}}

    body = {"steps": [[slow("left", 30), slow("right", 30)], slow("last", 1)]}
    workflow = client.post("/api/workflows", json=body).get_json()
    url = workflow["links"]["self"]

    def both_running() -> dict | None:
        body = client.get(url).get_json()
        return body if all(step["state"] == "PROGRESS" for step in body["steps"][:2]) else None

    wait_until(both_running, timeout=30)
    cancelled = client.delete(url)
    assert cancelled.status_code == 202

    def all_ended() -> dict | None:
        # The chord's callback is filed only after both header steps have ended.
        body = client.get(url).get_json()
        return body if all(step["state"] in TERMINAL_STATES for step in body["steps"]) else None

    done = wait_until(all_ended, timeout=20)
    assert [step["state"] for step in done["steps"]] == ["REVOKED"] * 3
    assert all(step["task"]["progress"]["current"] < 30 for step in done["steps"][:2]
               if step["task"]["progress"])  # fmt: skip
    assert done["steps"][2]["task"]["started_at"] is None  # the chord's callback never ran
    assert client.delete(url).status_code == 409


def test_retry_runs_a_workflow_again_from_the_step_that_failed(client, smtp_server):
    """The email step fails (the server refuses it); retry re-runs it alone, as the same
    workflow. Fails when retry runs every step again (the report's task id changes) or
    starts a new workflow (another id)."""
    smtp_server.data_reply = "554 5.7.1 Message rejected"
    response = client.post("/api/workflows", json=photo_report(upload_image(client)))
    url = response.get_json()["links"]["self"]
    failed = wait_for_state(client, url, {"FAILURE", "SUCCESS"}, timeout=60)
    assert failed["state"] == "FAILURE"
    assert [step["state"] for step in failed["steps"]] == ["SUCCESS", "SUCCESS", "FAILURE"]
    smtp_server.data_reply = None
    retried = client.post(failed["links"]["retry"])
    assert retried.status_code == 202, retried.get_json()
    assert retried.get_json()["id"] == failed["id"]
    wait_for_state(client, url, {"SUCCESS"}, timeout=60)
    done = client.get(url).get_json()
    assert [step["task_id"] for step in done["steps"][:2]] == [
        step["task_id"] for step in failed["steps"][:2]
    ]
    mail = done["steps"][2]["task"]
    assert mail["id"] != failed["steps"][2]["task_id"]
    assert mail["links"]["retry_of"].endswith(failed["steps"][2]["task_id"])
    assert len(smtp_server.envelopes) == 1


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ([{"name": "a", "kind": "knit", "inputs": {}}], "kind"),
        ([{"name": "a", "kind": "report", "uses": ["b"],
           "inputs": {"title": "T", "sections": [{"heading": "h", "text": "t"}]}}], "uses"),
        ([{"name": "a", "kind": "slow", "uses": ["a"], "inputs": {"name": "x"}}], "uses"),
        ([{"name": "a", "kind": "thumbnail", "inputs": {"upload_id": "0" * 64}}], "inputs"),
        ([{"name": "a", "kind": "slow", "inputs": {"seconds": 1}}], "name"),
        ([{"name": "a", "kind": "slow", "inputs": {"name": "x"}},
          {"name": "a", "kind": "slow", "inputs": {"name": "y"}}], "1"),
    ],
)  # fmt: skip
def test_a_step_that_cannot_run_is_a_422_naming_it(client, steps, where):
    """Fails when a workflow is queued with a step that would fail at once."""
    response = client.post("/api/workflows", json={"steps": steps})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]["json"]["steps"]
    assert where in str(errors)


def test_another_owner_cannot_see_a_workflow(keyed_app):
    """Fails without the owner check: bob reads alice's workflow."""
    client = keyed_app.test_client()
    alice = {"Authorization": "Bearer alice-secret"}
    body = {"steps": [{"name": "a", "kind": "slow", "inputs": {"name": "x", "seconds": 0}}]}
    response = client.post("/api/workflows", json=body, headers=alice)
    assert response.status_code == 202, response.get_json()
    url = response.get_json()["links"]["self"]
    assert client.get(url, headers=alice).status_code == 200
    assert client.get(url, headers={"Authorization": "Bearer bob-secret"}).status_code == 404


def test_steps_side_by_side_then_one_that_uses_both_run_as_a_chord(client):
    """Two thumbnail steps in one stage, then a report showing both: Celery runs the
    stage as a chord. Fails when a stage of several is not a group (the report runs
    before a thumbnail exists: fewer images), or when the step the chord queues later
    is not filed under the workflow (no record for it)."""
    upload_id = upload_image(client)

    def thumbnails(name: str, sizes: list[int]) -> dict:
        return {
            "name": name,
            "kind": "thumbnail",
            "inputs": {"upload_id": upload_id, "sizes": sizes},
        }

    body = {
        "steps": [
            [thumbnails("small", [32]), thumbnails("large", [96, 160])],
            {"name": "report", "kind": "report", "uses": ["small", "large"],
             "inputs": {"title": "Both", "sections": [{"heading": "h", "text": "t"}]}},
        ]
    }  # fmt: skip
    workflow = client.post("/api/workflows", json=body).get_json()
    assert workflow["stages"] == [["small", "large"], ["report"]]
    assert workflow["steps"][2]["after"] == ["small", "large"]
    done = wait_for_state(client, workflow["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
    assert done["state"] == "SUCCESS", [step["task"]["error"] for step in done["steps"]]
    report = done["steps"][2]["task"]
    assert report["workflow"] == workflow["id"]
    pdf = PdfReader(io.BytesIO(client.get(report["links"]["artifacts"]["report.pdf"]).data))
    assert sum(len(page.images) for page in pdf.pages) == 3


def test_queueing_a_workflow_with_a_group_keeps_no_subscription(app, client):
    """Building a canvas with a group freezes a result for each member, whose barrier
    (Celery's) subscribes the producer to each member's result channel until the objects
    are garbage collected: a web process would hold them. Fails without
    ``workflows.let_go`` (the channels stay subscribed; the collector is off here, as it
    may not run for a long while in a web process)."""

    def slow(name: str, seconds: int = 0) -> dict:
        return {"name": name, "kind": "slow", "inputs": {"name": name, "seconds": seconds}}

    redis = app.extensions["redis"]
    backend = app.extensions["celery"].backend
    gc.disable()
    try:
        body = {"steps": [slow("first", 1), [slow("left"), slow("right")], slow("last")]}
        workflow = client.post("/api/workflows", json=body).get_json()
        channels = [backend.get_key_for_task(step["task_id"]) for step in workflow["steps"]]
        assert [count for _, count in redis.pubsub_numsub(*channels)] == [0, 0, 0, 0]
    finally:
        gc.enable()
    wait_for_state(client, workflow["links"]["self"], {"SUCCESS"}, timeout=30)


def test_a_chain_s_first_task_recorded_by_its_worker_first_is_still_a_step(app):
    """The worker that takes a chain's first message may record it before its producer
    does, from a message that cannot tell it from a task of its own; the producer's
    record then still files it under its workflow. Fails without the QUEUED script's
    workflow filing on an existing entry (the chain's workflow lacks its first task:
    seen once in CI)."""
    from datetime import UTC, datetime

    from celery import uuid

    from my_app.store.ledger import ledger_of

    ledger = ledger_of(app)
    task_id = uuid()
    submitted = datetime.now(UTC)
    entry = {"id": task_id, "kind": "slow", "task": slow_task.name, "owner": "public",
             "queue": "default", "inputs": "{}", "submitted_at": submitted.isoformat()}  # fmt: skip
    now = submitted.timestamp()
    taken = {**entry, "worker": "w@x", "received_at": entry["submitted_at"]}
    assert ledger.record_queued(taken, now)
    assert not ledger.record_queued({**entry, "workflow": task_id}, now)
    assert ledger.workflow_task_ids(task_id) == [task_id]
    assert ledger.read_entry(task_id)["workflow"] == task_id
