"""The task resources: read, list, cancel, retry, download artifacts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from ..broker_queues import recent_waiting_messages
from ..extensions import redis_client
from ..owners import (
    can_see,
    current_owner,
    visible_finished_ids,
    visible_task_ids,
    visible_task_page,
    visible_unfinished_ids,
)
from ..store import artifacts, ledger, task_records
from ..submission import submit_job
from .limits import submission_limit
from .quotas import check_active_jobs, input_bytes_limit
from .schemas import (
    ErrorSchema,
    IdempotencyHeadersSchema,
    TaskQueryArgsSchema,
    TaskSchema,
    TaskSummarySchema,
)

blp = Blueprint(
    "tasks",
    __name__,
    url_prefix="/api/tasks",
    description="Read, list, cancel, retry and follow tasks.",
)

RETRYABLE_STATES = frozenset({"FAILURE", "REVOKED", "LOST"})
BINARY_SCHEMA = {"type": "string", "format": "binary"}


def tasks_as_shown(task_ids: list[str]) -> list[dict[str, Any]]:
    """The known tasks among ``task_ids``, a purged or lost one shown as LOST, and
    warnings where a worker is gone or missing."""
    backend = current_app.extensions["celery"].backend
    tasks = task_records.load_tasks(redis_client.client, backend, task_ids)
    return with_warnings(checked_for_lost(tasks))


def with_warnings(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks, with a ``warning`` on each one held (running, or fetched ahead) by a
    worker whose heartbeat has expired (its message is queued again when its lease runs
    out, my_app.worker.leases) and on each waiting one whose queue no live worker
    consumes (the classic "stuck on PENDING"). Read only when some task needs it."""
    held = [t for t in tasks if t["worker"] and t["state"] in task_records.HELD_STATES]
    waiting = [t for t in tasks if t["state"] == "QUEUED" and not t["received_at"] and t["queue"]]
    if not held and not waiting:
        return tasks
    workers = ledger.live_workers(redis_client.client)
    consumed = {queue for queues in workers.values() for queue in queues}
    for task in held:
        if task["worker"] not in workers:
            task["warning"] = (
                f"Its worker {task['worker']} has not been seen for a while: the job will "
                "be queued again and run on another worker."
            )
    for task in waiting:
        if task["queue"] not in consumed:
            task["warning"] = (
                f"No worker consumes queue {task['queue']}: the job waits until one does."
            )
    return tasks


def checked_for_lost(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks, with LOST for a QUEUED one whose message is in no queue and no worker.

    Only tasks queued for over LOST_CHECK_AFTER_SECONDS that no worker has taken are
    checked: those whose queue is empty are read again (a worker may have taken the
    message meanwhile) before they are called lost.
    """
    now = datetime.now(UTC)
    grace = current_app.config["LOST_CHECK_AFTER_SECONDS"]
    suspects = [
        task
        for task in tasks
        if task["state"] == "QUEUED"
        and not task["received_at"]
        and task["queue"]
        and (now - datetime.fromisoformat(task["submitted_at"])).total_seconds() > grace
    ]
    if not suspects:
        return tasks
    queues = {task["queue"] for task in suspects}
    depths = recent_waiting_messages(current_app.extensions["celery"], queues)
    candidates = [task["id"] for task in suspects if depths[task["queue"]] == 0]
    if not candidates:
        return tasks
    results = current_app.extensions["celery"].backend
    still_waiting = {
        task["id"]
        for task in task_records.load_tasks(redis_client.client, results, candidates)
        if task["state"] == "QUEUED" and not task["received_at"]
    }
    return [task_records.mark_lost(t) if t["id"] in still_waiting else t for t in tasks]


def task_or_404(task_id: UUID | str) -> dict[str, Any]:
    """The caller's task with this id (any task, for an admin), or a 404 error: another
    owner's task is as absent as one that never existed."""
    found = tasks_as_shown([str(task_id)])
    if not found or not can_see(found[0]):
        abort(404, message=f"No task {task_id}: it never existed or has expired.")
    return found[0]


def with_links(task: dict[str, Any]) -> dict[str, Any]:
    """The task record with the URLs to follow from it (TaskSchema picks what is shown)."""
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
    return {**task, "links": links}


def accept(
    task_name: str,
    inputs: dict[str, Any],
    headers: dict[str, Any],
    *,
    args: list[Any] | None = None,
    retry_of: str | None = None,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Submit a job within the caller's quotas and answer 202 with its task (200 when an
    Idempotency-Key replays it)."""
    check_active_jobs()
    submission = submit_job(
        task_name,
        inputs,
        args=args or [],
        owner=current_owner(),
        idempotency_key=headers.get("idempotency_key"),
        retry_of=retry_of,
        max_input_bytes=input_bytes_limit(),
    )
    task = with_links(submission.task)
    status = 202 if submission.created else 200
    return task, status, {"Location": task["links"]["self"]}


@blp.route("")
class TaskCollection(MethodView):
    @blp.arguments(TaskQueryArgsSchema(), location="query")
    @blp.response(200, TaskSummarySchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """List your tasks, newest first"""
        client = redis_client.client
        first = pagination_parameters.first_item
        last = first + pagination_parameters.page_size
        state = filters.get("state")
        if set(filters) == {"state"} and state in ledger.INDEXED_STATES:
            # Finished tasks are filed by state as they end: read only the page.
            page, pagination_parameters.item_count = visible_finished_ids(
                client, state, first, last
            )
            return [with_links(task) for task in tasks_as_shown(page)]
        if not filters:
            page, pagination_parameters.item_count = visible_task_page(client, first, last)
            return [with_links(task) for task in tasks_as_shown(page)]
        if state is not None and state not in ledger.INDEXED_STATES:
            # Unfinished or lost: only tasks still active or waiting can be.
            queues = list(current_app.config["TASK_QUEUES"])
            candidates = visible_unfinished_ids(client, queues)
        else:  # a kind: read them all
            candidates = visible_task_ids(client)
        matching = sorted(
            (
                task
                for task in tasks_as_shown(candidates)
                if can_see(task) and all(task[name] == value for name, value in filters.items())
            ),
            key=lambda task: task["submitted_at"],
            reverse=True,
        )
        pagination_parameters.item_count = len(matching)
        return [with_links(task) for task in matching[first:last]]


@blp.route("/<uuid:task_id>")
class TaskItem(MethodView):
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such task")
    def get(self, task_id: UUID) -> dict[str, Any]:
        """Read a task's state, progress, result and error"""
        return with_links(task_or_404(task_id))

    @blp.response(202, TaskSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such task")
    @blp.alt_response(409, schema=ErrorSchema, description="The task has already finished")
    def delete(self, task_id: UUID) -> dict[str, Any]:
        """Cancel a task: a queued one never starts, a running one stops at its next step"""
        task = task_or_404(task_id)
        if task["state"] in task_records.TERMINAL_STATES:
            abort(409, message=f"Task {task_id} already finished ({task['state']}).")
        ledger.request_cancel(redis_client.client, task["id"])
        # A cancelled job no longer counts against its owner's jobs at once.
        ledger.drop_active(redis_client.client, task["owner"], {task["id"]})
        # The flag above is what counts; the broadcast lets a worker that already
        # holds the message drop it without starting it (Celery's own revoked path).
        current_app.extensions["celery"].control.revoke(task["id"])
        return with_links(task_or_404(task_id))


@blp.route("/<uuid:task_id>/retry")
class TaskRetry(MethodView):
    decorators = [submission_limit]

    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.response(202, TaskSchema)
    @blp.alt_response(200, schema=TaskSchema, description="An Idempotency-Key replay")
    @blp.alt_response(404, schema=ErrorSchema, description="No such task")
    @blp.alt_response(409, schema=ErrorSchema, description="Only a finished task can be retried")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many submissions this minute")
    @blp.alt_response(503, schema=ErrorSchema, description="Nothing was queued")
    def post(self, headers: dict[str, Any], task_id: UUID) -> Any:
        """Run a failed, cancelled or lost task again with the same inputs, as a new task"""
        task = task_or_404(task_id)
        if task["state"] not in RETRYABLE_STATES:
            abort(
                409,
                message=f"Task {task_id} is {task['state']}; "
                "only FAILURE, REVOKED or LOST can be retried.",
            )
        entry = ledger.read_entry(redis_client.client, task["id"])
        if entry is None or entry["task"] not in current_app.extensions["celery"].tasks:
            abort(409, message=f"Task {task_id} is not a task this service can run.")
        return accept(
            entry["task"], entry["inputs"], headers, args=entry["args"], retry_of=task["id"]
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
@blp.alt_response(404, schema=ErrorSchema, description="No such task or artifact")
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
