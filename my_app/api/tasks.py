"""The task resources: read, list, cancel, retry, follow live, download artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from flask import Response, current_app, jsonify, request, stream_with_context
from flask.views import MethodView
from flask_smorest import abort

from .. import artifacts, ledger, task_state
from ..extensions import redis_client
from ..submission import current_owner, submit_job
from ..task_events import owner_event_stream, task_event_stream
from .blueprint import Blueprint
from .schemas import IdempotencyHeadersSchema, TaskQueryArgsSchema, TaskSchema

blp = Blueprint(
    "tasks",
    __name__,
    url_prefix="/api/tasks",
    description="Read, list, cancel, retry and follow tasks.",
)

RETRYABLE_STATES = frozenset({"FAILURE", "REVOKED"})
# Kept in the record for the service's own use; clients see them as links, or not at all.
INTERNAL_FIELDS = frozenset({"owner", "artifacts", "retry_of"})
BINARY_SCHEMA = {"type": "string", "format": "binary"}
# One Server-Sent Event, as schemathesis and OpenAPI 3.2 describe a stream item.
SSE_RESPONSE = {
    "description": "Server-Sent Events, each carrying a task record (TaskSchema) as JSON",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "properties": {
                    "data": {"type": "string"},
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            }
        }
    },
}


def task_or_404(task_id: UUID | str) -> dict[str, Any]:
    """The task with this id, or a 404 error."""
    task = task_state.load_task(redis_client.client, str(task_id))
    if task is None or task["owner"] != current_owner():
        abort(404, message=f"No task {task_id}: it never existed or has expired.")
    return task


def with_links(task: dict[str, Any]) -> dict[str, Any]:
    """The task record as the API shows it: its public fields and the URLs to follow.

    Links are built by hand rather than with url_for: this runs for every task of every
    answer and every event.
    """
    tasks_url = f"{request.script_root}{blp.url_prefix}"
    task_url = f"{tasks_url}/{task['id']}"
    links = {
        "self": task_url,
        "events": f"{task_url}/events",
        "cancel": task_url,
        "retry": f"{task_url}/retry",
    }
    if task["retry_of"]:
        links["retry_of"] = f"{tasks_url}/{task['retry_of']}"
    if task["artifacts"]:
        links["artifacts"] = {name: f"{task_url}/artifacts/{name}" for name in task["artifacts"]}
    public = {name: value for name, value in task.items() if name not in INTERNAL_FIELDS}
    return {**public, "links": links}


def accept(
    kind: str, inputs: dict[str, Any], headers: dict[str, Any], retry_of: str | None = None
) -> Any:
    """Submit a job and answer 202 with its task (200 when an Idempotency-Key replays it)."""
    submission = submit_job(
        kind,
        inputs,
        idempotency_key=headers.get("idempotency_key"),
        retry_of=retry_of,
        client_address=request.remote_addr,
    )
    task = with_links(submission.task)
    status = 202 if submission.created else 200
    # Like the read below, the record already has the schema's shape: no marshmallow dump.
    return jsonify(task), status, {"Location": task["links"]["self"]}


@blp.route("")
class TaskCollection(MethodView):
    @blp.arguments(TaskQueryArgsSchema(), location="query")
    @blp.response(200, TaskSchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """List your tasks, newest first"""
        client = redis_client.client
        owner = current_owner()
        task_ids = ledger.owner_task_ids(client, owner)
        first = pagination_parameters.first_item
        last = first + pagination_parameters.page_size
        if not filters:
            tasks = task_state.load_tasks(client, task_ids[first:last])
            pagination_parameters.item_count = len(task_ids)
            return [with_links(task) for task in tasks]
        matching = [
            task
            for task in task_state.load_tasks(client, task_ids)
            if all(task[name] == value for name, value in filters.items())
        ]
        pagination_parameters.item_count = len(matching)
        return [with_links(task) for task in matching[first:last]]


@blp.route("/<uuid:task_id>")
class TaskItem(MethodView):
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, description="No such task")
    def get(self, task_id: UUID) -> Response:
        """Read a task's state, progress, result and error"""
        # The hottest read: the record already has the schema's shape (the schemathesis
        # run checks every answer against it), so it skips marshmallow's dump.
        return jsonify(with_links(task_or_404(task_id)))

    @blp.response(202, TaskSchema)
    @blp.alt_response(404, description="No such task")
    @blp.alt_response(409, description="The task has already finished")
    def delete(self, task_id: UUID) -> dict[str, Any]:
        """Cancel a task: a queued one never starts, a running one stops at its next step"""
        task = task_or_404(task_id)
        if task["state"] in task_state.TERMINAL_STATES:
            abort(409, message=f"Task {task_id} already finished ({task['state']}).")
        ledger.request_cancel(redis_client.client, task["id"])
        # The flag above is what counts; the broadcast lets a worker that already
        # holds the message drop it without starting it.
        current_app.extensions["celery"].control.revoke(task["id"])
        return with_links(task_or_404(task_id))


@blp.route("/<uuid:task_id>/retry")
class TaskRetry(MethodView):
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.response(202, TaskSchema)
    @blp.alt_response(404, description="No such task")
    @blp.alt_response(409, description="Only a failed or cancelled task can be retried")
    def post(self, headers: dict[str, Any], task_id: UUID) -> Any:
        """Run a failed or cancelled task again with the same inputs, as a new task"""
        task = task_or_404(task_id)
        if task["state"] not in RETRYABLE_STATES:
            abort(
                409,
                message=f"Task {task_id} is {task['state']}; "
                "only FAILURE or REVOKED can be retried.",
            )
        return accept(task["kind"], task["inputs"], headers, retry_of=task["id"])


def event_stream_response(stream: Iterator[str]) -> Response:
    """A text/event-stream response that proxies pass through unbuffered."""
    return Response(
        stream_with_context(stream),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@blp.route("/events")
@blp.doc(responses={"200": SSE_RESPONSE})
def task_feed() -> Response:
    """Follow all your tasks live: every unfinished one now, then each new task and change"""
    return event_stream_response(
        owner_event_stream(
            redis_client.client,
            current_owner(),
            heartbeat_seconds=current_app.config["EVENTS_HEARTBEAT_SECONDS"],
            present=with_links,
        )
    )


@blp.route("/<uuid:task_id>/events")
@blp.doc(responses={"200": SSE_RESPONSE})
@blp.alt_response(404, description="No such task")
def task_events(task_id: UUID) -> Response:
    """Follow a task live: its record now, then at every change, until it finishes"""
    task = task_or_404(task_id)
    return event_stream_response(
        task_event_stream(
            redis_client.client,
            task["id"],
            heartbeat_seconds=current_app.config["EVENTS_HEARTBEAT_SECONDS"],
            present=with_links,
        )
    )


@blp.route("/<uuid:task_id>/artifacts/<name>")
@blp.doc(
    responses={
        "200": {
            "description": "The file a job produced (a PDF, a thumbnail, ...)",
            "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}},
        }
    }
)
@blp.alt_response(404, description="No such task or artifact")
def task_artifact(task_id: UUID, name: str) -> Response:
    """Download a file a job produced; ?download=1 asks the browser to save it"""
    task = task_or_404(task_id)
    data = artifacts.load_artifact(redis_client.binary, task["id"], name)
    if name not in task["artifacts"] or data is None:
        abort(404, message=f"Task {task_id} has no artifact {name!r}.")
    disposition = "attachment" if request.args.get("download") else "inline"
    return Response(
        data,
        mimetype=artifacts.content_type(name),
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
    )
