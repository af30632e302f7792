"""Uploads and workflows: a file kept for the steps that read it, and several jobs run as
one Celery canvas (``my_app.workflows``), read, cancelled and retried as one thing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError
from PIL import Image

from ..owners import can_see, current_owner
from ..store.ledger import ledger_of
from ..tasks import email_task, report_task, slow_task, thumbnail_task, video_task
from ..workflows import (
    USES_INPUT,
    WorkflowError,
    WorkflowRecord,
    cancel_workflow,
    read_workflow,
    retry_workflow,
    start_workflow,
)
from .jobs import JobsBlueprint, stored_image, stored_video
from .limits import submission_limit
from .quotas import check_active_jobs, check_job_seconds
from .schemas import (
    EmailJobSchema,
    ErrorSchema,
    ReportJobSchema,
    SlowJobSchema,
    UploadedImageJobSchema,
    UploadedSchema,
    UploadedVideoJobSchema,
    UploadSchema,
    WorkflowRequestSchema,
    WorkflowSchema,
)
from .tasks import with_links

uploads = JobsBlueprint(
    "uploads", __name__, url_prefix="/api/uploads",
    description="Keep an image or a video for the workflow steps that read it.",
)  # fmt: skip
blp = JobsBlueprint(
    "workflows", __name__, url_prefix="/api/workflows",
    description="Run several jobs as one Celery canvas, and follow, cancel or retry it.",
)  # fmt: skip


@uploads.before_request
def uploads_may_be_videos() -> None:
    """An upload may be as large as a video (MAX_VIDEO_UPLOAD_BYTES)."""
    request.max_content_length = current_app.config["MAX_VIDEO_UPLOAD_BYTES"]


@uploads.route("")
class Uploads(MethodView):
    decorators = [submission_limit]

    @uploads.arguments(UploadSchema(), location="multipart")
    @uploads.response(201, UploadedSchema)
    @uploads.alt_response(413, schema=ErrorSchema, description="The file is too large")
    @uploads.alt_response(422, schema=ErrorSchema, description="Not a usable image or video")
    def post(self, form: dict[str, Any]) -> Any:
        """Upload an image or a video for a workflow's thumbnail or video step"""
        upload = form["file"]
        size = upload.stream.seek(0, 2)
        upload.stream.seek(0)
        if size <= current_app.config["MAX_UPLOAD_BYTES"] and is_image(upload.stream):
            kind, upload_id = "image", stored_image(upload)
        else:
            kind, upload_id = "video", stored_video(upload)
        return {"upload_id": upload_id, "kind": kind, "size_bytes": size}


def is_image(stream: Any) -> bool:
    """Whether Pillow recognises the file as an image (its header only)."""
    try:
        with Image.open(stream):
            return True
    except Exception:
        return False
    finally:
        stream.seek(0)


#: Each kind a step may be: its task, and the schema its inputs are checked with.
STEP_KINDS = {
    "slow": (slow_task, SlowJobSchema()),
    "email": (email_task, EmailJobSchema(exclude=("attachment_tasks",))),
    "report": (report_task, ReportJobSchema(exclude=("image_tasks",))),
    "thumbnail": (thumbnail_task, UploadedImageJobSchema()),
    "video": (video_task, UploadedVideoJobSchema()),
}


def checked_stages(steps: list[Any]) -> list[list[dict[str, Any]]]:
    """The request's steps as stages of checked steps; raises ValidationError naming
    each problem by its place (``steps.1.inputs.title``)."""
    errors: dict[str, Any] = {}
    stages, seen = [], set()
    for position, item in enumerate(steps):
        stage = []
        for offset, raw in enumerate(item if isinstance(item, list) else [item]):
            where = f"{position}" if not isinstance(item, list) else f"{position}.{offset}"
            try:
                stage.append(checked_step(raw, seen))
            except ValidationError as error:
                errors[where] = error.messages
        if isinstance(item, list) and not 1 <= len(item) <= 10:
            errors[str(position)] = ["A stage of steps side by side holds 1 to 10 steps."]
        names = [step["name"] for step in stage]
        if len(set(names)) != len(names) or seen & set(names):
            errors.setdefault(str(position), []).append("Each step needs a name of its own.")
        seen |= set(names)
        stages.append(stage)
    if errors:
        raise ValidationError({"steps": errors})
    return stages


def checked_step(raw: Any, earlier: set[str]) -> dict[str, Any]:
    """One step, its inputs checked by its kind's schema."""
    if not isinstance(raw, dict):
        raise ValidationError(["A step is an object: name, kind, inputs, uses."])
    name, kind, inputs, uses = (raw.get(key) for key in ("name", "kind", "inputs", "uses"))
    if not isinstance(name, str) or not name or len(name) > 40 or not name.isidentifier():
        raise ValidationError({"name": ["A name of 1 to 40 letters, digits or _."]})
    if kind not in STEP_KINDS:
        raise ValidationError({"kind": [f"One of: {', '.join(STEP_KINDS)}."]})
    uses = uses if uses is not None else []
    if not isinstance(uses, list) or not all(isinstance(used, str) for used in uses):
        raise ValidationError({"uses": ["A list of names of earlier steps."]})
    if uses and kind not in USES_INPUT:
        raise ValidationError({"uses": ["Only report and email steps use earlier files."]})
    if missing := [used for used in uses if used not in earlier]:
        raise ValidationError({"uses": [f"No earlier step named {', '.join(missing)}."]})
    task, schema = STEP_KINDS[kind]
    checked = schema.load(inputs if isinstance(inputs, dict) else {})
    if kind == "slow":
        check_job_seconds(checked["seconds"])
    if kind in ("thumbnail", "video"):
        wanted = "image" if kind == "thumbnail" else "video"
        if ledger_of().upload_kind(checked["upload_id"]) != wanted:
            raise ValidationError(
                {
                    "inputs": {
                        "upload_id": [f"No {wanted} uploaded with this id (POST /api/uploads)."]
                    }
                }
            )
    return {"name": name, "kind": kind, "task": task.name, "inputs": checked, "uses": uses}


def workflow_or_404(workflow_id: UUID | str) -> WorkflowRecord:
    """The caller's workflow (anyone's, for an admin), or 404."""
    workflow = read_workflow(str(workflow_id))
    if workflow is None or not can_see(workflow):
        abort(404, message=f"No workflow {workflow_id}: it never existed or has expired.")
    return workflow


def workflow_body(workflow: WorkflowRecord) -> dict[str, Any]:
    """A workflow as WorkflowSchema shows it, with its steps' task records and links."""
    url = f"{request.script_root}{blp.url_prefix}/{workflow.id}"
    return {
        "id": workflow.id,
        "name": workflow.name,
        "owner": workflow.owner,
        "state": workflow.state.value,
        "progress": workflow.progress,
        "submitted_at": workflow.submitted_at,
        "finished_at": workflow.finished_at,
        "stages": [list(stage) for stage in workflow.stages],
        "steps": [
            {
                "name": step.name,
                "kind": step.kind,
                "state": step.state.value,
                "after": list(step.after),
                "task": with_links(step.task) if step.task else None,
                "task_id": step.task_id,
            }
            for step in workflow.steps
        ],
        "links": {"self": url, "cancel": url, "retry": f"{url}/retry"},
    }


@blp.route("")
class Workflows(MethodView):
    decorators = [submission_limit]

    @blp.arguments(WorkflowRequestSchema())
    @blp.response(202, WorkflowSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="A step cannot run as given")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many submissions or jobs")
    @blp.alt_response(503, schema=ErrorSchema, description="Nothing was queued")
    def post(self, body: dict[str, Any]) -> Any:
        """Run steps of the job kinds as one Celery canvas: stages in order, a list of
        steps in a stage side by side; a report or email step `uses` earlier steps'
        files"""
        try:
            stages = checked_stages(body["steps"])
        except ValidationError as error:
            abort(422, message="A step cannot run as given.", errors={"json": error.messages})
        check_active_jobs()
        workflow_id = start_workflow(body["name"], stages, current_owner())
        workflow = workflow_body(workflow_or_404(workflow_id))
        return workflow, 202, {"Location": workflow["links"]["self"]}


@blp.route("/<uuid:workflow_id>")
class WorkflowItem(MethodView):
    @blp.response(200, WorkflowSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such workflow")
    def get(self, workflow_id: UUID) -> dict[str, Any]:
        """Read a workflow: its steps with their states, progress and files, and its own
        state and progress"""
        return workflow_body(workflow_or_404(workflow_id))

    @blp.response(202, WorkflowSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such workflow")
    @blp.alt_response(409, schema=ErrorSchema, description="The workflow has finished")
    def delete(self, workflow_id: UUID) -> dict[str, Any]:
        """Cancel a workflow: every step not done stops or never starts"""
        workflow = workflow_or_404(workflow_id)
        if workflow.finished:
            abort(409, message=f"Workflow {workflow_id} already finished ({workflow.state}).")
        cancel_workflow(current_app, workflow)
        return workflow_body(workflow_or_404(workflow_id))


@blp.route("/<uuid:workflow_id>/retry")
class WorkflowRetry(MethodView):
    decorators = [submission_limit]

    @blp.response(202, WorkflowSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such workflow")
    @blp.alt_response(409, schema=ErrorSchema, description="Nothing failed, or still running")
    def post(self, workflow_id: UUID) -> dict[str, Any]:
        """Run a failed or cancelled workflow again from its first stage that did not
        succeed, as the same workflow"""
        workflow = workflow_or_404(workflow_id)
        if not workflow.finished:
            abort(409, message=f"Workflow {workflow_id} is {workflow.state}; wait for its end.")
        check_active_jobs()
        try:
            retry_workflow(workflow)
        except WorkflowError as error:
            abort(409, message=str(error))
        return workflow_body(workflow_or_404(workflow_id))
