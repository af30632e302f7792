"""Clients we did not write: one generated from the live OpenAPI document by
openapi-python-client, and httpx-sse following a video job live. Both talk real HTTP to
the app, with a real worker and PyAV behind it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from uuid import UUID

import httpx
import pytest
from httpx_sse import connect_sse
from support import wait_until

from devservers.sample_video import make_video

pytestmark = pytest.mark.timeout(180)

#: The generated package's name (the folder it is written to).
CLIENT_PACKAGE = "jobs_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, worker_app) -> Iterator[ModuleType]:
    """A Python client generated from the app's own /api/openapi.json, imported."""
    folder = tmp_path_factory.mktemp("generated")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(worker_app.test_client().get("/api/openapi.json").get_json()))
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [generator, "generate", "--path", spec, "--output-path", folder / CLIENT_PACKAGE,
         "--meta", "none"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


def generated_module(name: str) -> ModuleType:
    """A module of the generated client, e.g. ``api.jobs.post_api_tasks_video``."""
    return importlib.import_module(f"{CLIENT_PACKAGE}.{name}")


def followed_to_the_end(client: object, task_id: str, timeout: float = 60) -> object:
    """Read a task with the generated client until it has finished; its parsed record."""
    read = generated_module("api.tasks.get_api_tasks_task_id")

    def finished() -> object | None:
        task = read.sync(UUID(task_id), client=client)
        return task if task.state.value in {"SUCCESS", "FAILURE", "REVOKED", "LOST"} else None

    return wait_until(finished, timeout=timeout)


def test_a_generated_client_uploads_a_video_and_reads_its_record_and_files(
    generated, live_server, tmp_path
):
    """The video route's multipart body, the task record, its artifact download and the
    error answers all work as the document says. Fails when the document drifts from
    the service: seen failing with ``TaskSchema.progress`` documented without
    ``allow_none`` (a queued task's null progress does not parse)."""
    models, types = generated_module("models"), generated_module("types")
    submit = generated_module("api.jobs.post_api_tasks_video")
    download = generated_module("api.tasks.get_api_tasks_task_id_artifacts_name")
    client = generated.Client(base_url=live_server, raise_on_unexpected_status=True)
    clip = make_video(tmp_path / "clip.mp4", seconds=2)
    with clip.open("rb") as stream:
        body = models.VideoJob(
            file=types.File(payload=stream, file_name="clip.mp4", mime_type="video/mp4"),
            preview_height=144,
            preview_format=models.VideoJobPreviewFormat.WEBM,
            contact_frames=4,
        )
        accepted = submit.sync_detailed(client=client, body=body)
    assert accepted.status_code == 202, accepted.content
    assert isinstance(accepted.parsed, models.Task)
    assert accepted.parsed.inputs["preview_format"] == "webm"

    done = followed_to_the_end(client, str(accepted.parsed.id))
    assert done.state == models.TaskState.SUCCESS
    assert done.result["metadata"]["frames"] == 50
    assert done.progress.current == done.progress.total == 50
    assert [entry.event.value for entry in done.timeline][-1] == "finished"
    preview = download.sync_detailed(done.id, "preview.webm", client=client)
    assert preview.status_code == 200 and preview.content[:4] == b"\x1a\x45\xdf\xa3"

    with (tmp_path / "notes.txt").open("w+b") as text:
        text.write(b"not a video")
        text.seek(0)
        refused = submit.sync_detailed(
            client=client,
            body=models.VideoJob(file=types.File(payload=text, file_name="notes.txt")),
        )
    assert refused.status_code == 422
    assert isinstance(refused.parsed, models.Error) and refused.parsed.code == 422


def test_a_generated_client_runs_a_workflow_and_cancels_a_job(generated, live_server):
    """Workflows and cancels through the generated client: a two-step workflow is read
    as one record, and a cancelled job reads REVOKED. Fails when the answers leave their
    documented schemas: seen failing with REVOKED left out of the documented states
    (``'REVOKED' is not a valid TaskState``)."""
    models = generated_module("models")
    start = generated_module("api.workflows.post_api_workflows")
    read = generated_module("api.workflows.get_api_workflows_workflow_id")
    submit = generated_module("api.jobs.post_api_tasks_slow")
    cancel = generated_module("api.tasks.delete_api_tasks_task_id")
    client = generated.Client(base_url=live_server, raise_on_unexpected_status=True)

    def slow(name: str) -> dict:
        return {"name": name, "kind": "slow", "inputs": {"name": name, "seconds": 0}}

    request = models.WorkflowRequest(steps=[slow("first"), slow("second")], name="Two steps")
    workflow = start.sync(client=client, body=request)
    assert isinstance(workflow, models.Workflow), workflow

    def finished() -> object | None:
        read_back = read.sync(workflow.id, client=client)
        return read_back if read_back.state.value == "SUCCESS" else None

    done = wait_until(finished, timeout=60)
    assert [step.name for step in done.steps] == ["first", "second"]

    job = submit.sync(client=client, body=models.SlowJob(name="Ada", seconds=60))
    assert isinstance(job, models.Task), job
    assert cancel.sync_detailed(job.id, client=client).status_code == 202
    assert followed_to_the_end(client, str(job.id)).state == models.TaskState.REVOKED


def test_httpx_sse_follows_a_video_job_frame_by_frame(live_server, tmp_path):
    """httpx-sse, a client of the SSE spec we did not write, reads a video job's stream
    to its end: progress in frames with an ETA, then SUCCESS, then the stream closes.
    Fails without the task's event stream (seen failing with the route answering 204
    at once), or when it stops before the final state."""
    clip = make_video(tmp_path / "clip.mp4", seconds=20, width=640, height=360)
    with httpx.Client(base_url=live_server, timeout=30) as http:
        with clip.open("rb") as stream:
            accepted = http.post("/api/tasks/video", files={"file": ("clip.mp4", stream)})
        assert accepted.status_code == 202, accepted.text
        events_url = accepted.json()["links"]["events"]
        records: list[dict] = []
        deadline = time.monotonic() + 120
        with connect_sse(http, "GET", events_url) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            for event in source.iter_sse():
                records.append(event.json())
                if records[-1]["state"] in {"SUCCESS", "FAILURE", "REVOKED"}:
                    break
                assert time.monotonic() < deadline, records[-1]
    assert records[-1]["state"] == "SUCCESS"
    framed = [r["progress"] for r in records if r["state"] == "PROGRESS" and r["progress"]]
    assert framed and framed[0]["message"].startswith("frame ")
    assert any(progress.get("eta_seconds") is not None for progress in framed)
    assert [p["current"] for p in framed] == sorted(p["current"] for p in framed)
