"""The task resources: read, list, cancel, retry, purge, download artifacts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from werkzeug.wsgi import FileWrapper

from .. import lifecycle, webhooks
from ..owners import (
    can_see,
    current_owner,
    visible_finished_ids,
    visible_owner,
    visible_task_page,
)
from ..records import RETRYABLE_STATES, TaskRecord, TaskState
from ..selection import TaskFilter, selected_tasks
from ..status import read_tasks
from ..store import artifacts
from ..store.artifacts import artifact_store
from ..submission import submit_job
from .limits import submission_limit
from .quotas import check_active_jobs, input_bytes_limit, over_quota
from .schemas import (
    BulkActionSchema,
    BulkResultSchema,
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

BINARY_SCHEMA = {"type": "string", "format": "binary"}


def task_or_404(task_id: UUID | str) -> TaskRecord:
    """The caller's task with this id (any task, for an admin), or a 404 error: another
    owner's task is as absent as one that never existed."""
    found = read_tasks([str(task_id)])
    if not found or not can_see(found[0]):
        abort(404, message=f"No task {task_id}: it never existed or has expired.")
    return found[0]


def with_links(task: TaskRecord) -> dict[str, Any]:
    """The task record with the URLs to follow from it (TaskSchema picks what is shown)."""
    tasks_url = f"{request.script_root}{blp.url_prefix}"
    task_url = f"{tasks_url}/{task.id}"
    links = {
        "self": task_url,
        "events": f"{task_url}/events",
        "cancel": task_url,
        "retry": f"{task_url}/retry",
    }
    if task.retry_of:
        links["retry_of"] = f"{tasks_url}/{task.retry_of}"
    if task.retried_by:
        links["retried_by"] = f"{tasks_url}/{task.retried_by}"
    if task.waiting_for:
        links["waiting_for"] = f"{tasks_url}/{task.waiting_for}"
    if task.workflow:
        links["workflow"] = f"{request.script_root}/api/workflows/{task.workflow}"
    if task.schedule:
        links["schedule"] = f"{request.script_root}/api/schedules/{task.schedule}"
    if task.finished:
        links["purge"] = f"{task_url}/purge"
    if task.artifacts:
        links["artifacts"] = {name: f"{task_url}/artifacts/{name}" for name in task.artifacts}
    return {**task.as_dict(), "links": links}


def accept(
    task_name: str,
    inputs: dict[str, Any],
    headers: dict[str, Any],
    *,
    args: list[Any] | None = None,
    retry_of: str | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Submit a job within the caller's quotas and answer 202 with its task (200 when an
    Idempotency-Key replays it); ``options`` may hold it until a time (``run_at``) or
    for a while (``countdown``), and name a ``callback_url``."""
    options = options or {}
    check_active_jobs()
    run_at = held_until(options, "upload_id" in inputs)
    callback_url = checked_callback(options.get("callback_url"))
    submission = submit_job(
        task_name,
        inputs,
        args=args or [],
        owner=current_owner(),
        idempotency_key=headers.get("idempotency_key"),
        retry_of=retry_of,
        max_input_bytes=input_bytes_limit(),
        run_at=run_at,
        callback_url=callback_url,
    )
    task = with_links(submission.task)
    status = 202 if submission.created else 200
    return task, status, {"Location": task["links"]["self"]}


def checked_callback(url: str | None) -> str | None:
    """The submission's callback address (else the owner's default), checked: 422 for
    one the service will not call (a private address, unless WEBHOOK_ALLOWED_HOSTS)."""
    url = url or current_app.config["WEBHOOK_DEFAULT_URLS"].get(current_owner())
    if not url:
        return None
    try:
        return webhooks.checked_callback_url(url, current_app.config["WEBHOOK_ALLOWED_HOSTS"])
    except webhooks.WebhookRefused as error:
        abort(422, message=str(error), errors={"query": {"callback_url": [str(error)]}})


def held_until(when: dict[str, Any], reads_upload: bool) -> datetime | None:
    """When a submission asked to run (None: now), within MAX_RUN_AT_SECONDS, and within
    an upload's life (RESULT_EXPIRES) for a job that reads one; else 422."""
    now = datetime.now(UTC)
    if "countdown" in when:
        run_at = now + timedelta(seconds=when["countdown"])
    elif "run_at" in when:
        run_at = when["run_at"].astimezone(UTC)
    else:
        return None
    ahead = (run_at - now).total_seconds()
    limit = current_app.config["MAX_RUN_AT_SECONDS"]
    if reads_upload:
        limit = min(limit, current_app.config["RESULT_EXPIRES"])
    if ahead > limit:
        message = f"A job may be held at most {limit} seconds ahead"
        if reads_upload:
            message += " (its upload is kept RESULT_EXPIRES)"
        abort(422, message=f"{message}.", errors={"query": {"run_at": [f"{message}."]}})
    return run_at if ahead > 0 else None


@blp.route("")
class TaskCollection(MethodView):
    @blp.arguments(TaskQueryArgsSchema(), location="query")
    @blp.response(200, TaskSummarySchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """List your tasks, newest first"""
        first = pagination_parameters.first_item
        last = first + pagination_parameters.page_size
        task_filter = checked_filter(filters)
        if task_filter.by_state_only:
            # Finished tasks are filed by state as they end: read only the page.
            page, pagination_parameters.item_count = visible_finished_ids(
                task_filter.state, first, last
            )
            return [with_links(task) for task in read_tasks(page)]
        if task_filter == TaskFilter():
            page, pagination_parameters.item_count = visible_task_page(first, last)
            return [with_links(task) for task in read_tasks(page)]
        matching = sorted(
            selected_tasks(task_filter), key=lambda task: task.submitted_at, reverse=True
        )
        pagination_parameters.item_count = len(matching)
        return [with_links(task) for task in matching[first:last]]


def checked_filter(filters: dict[str, Any]) -> TaskFilter:
    """The list's (or a bulk action's) filter; 403 for an owner named by a non-admin."""
    owner = filters.get("owner")
    if owner is not None and visible_owner() not in (None, owner):
        abort(403, message="Only an admin may name another owner.")
    return TaskFilter.of(filters)


#: The most skipped tasks a bulk action's answer lists (it counts them all).
MAX_SKIPPED_SHOWN = 100


def bulk_action(
    filters: dict[str, Any],
    refusal: Callable[[TaskRecord], str | None],
    act: Callable[[TaskRecord], str],
) -> dict[str, Any]:
    """Act on up to ``limit`` tasks the filters select; a task ``refusal`` names a reason
    for is skipped (and not counted against the limit). ``more`` says whether another
    call would find more to act on."""
    if not request.get_data():  # "every task" must be asked for: {}
        abort(400, message="Send the filters as a JSON body ({} for every task you may see).")
    limit = filters.pop("limit")
    done: list[str] = []
    skipped: list[dict[str, str]] = []
    skipped_count = 0
    for task in selected_tasks(checked_filter(filters)):
        reason = refusal(task)
        if reason is not None:
            skipped_count += 1
            if len(skipped) < MAX_SKIPPED_SHOWN:
                skipped.append({"id": task.id, "reason": reason})
            continue
        if len(done) == limit:
            return result_of(done, skipped, skipped_count, more=True)
        done.append(act(task))
    return result_of(done, skipped, skipped_count, more=False)


def result_of(
    done: list[str], skipped: list[dict[str, str]], skipped_count: int, *, more: bool
) -> dict[str, Any]:
    """A bulk action's answer."""
    return {"acted_on": len(done), "task_ids": done, "skipped": skipped,
            "skipped_count": skipped_count, "more": more}  # fmt: skip


@blp.route("/cancel")
class BulkCancel(MethodView):
    @blp.arguments(BulkActionSchema())
    @blp.response(200, BulkResultSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Another owner, named by a non-admin")
    def post(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Cancel the tasks the filters match (the list's filters), up to ``limit`` a
        call; finished ones, and those already being cancelled, are skipped, saying so"""

        def cancelled(task: TaskRecord) -> str:
            lifecycle.cancel(current_app, task.id, task.owner)
            return task.id

        return bulk_action(filters, cancel_refusal, cancelled)


def cancel_refusal(task: TaskRecord) -> str | None:
    """Why a task is not cancelled, or None."""
    if task.finished:
        return f"already finished ({task.state})"
    if task.cancel_requested:
        return "already being cancelled"
    return None


@blp.route("/retry")
class BulkRetry(MethodView):
    decorators = [submission_limit]

    @blp.arguments(BulkActionSchema())
    @blp.response(200, BulkResultSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Another owner, named by a non-admin")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many submissions this minute")
    @blp.alt_response(503, schema=ErrorSchema, description="Redis or the broker is unreachable")
    def post(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Run again the failed, cancelled or lost tasks the filters match, each as a new
        task with ``retry_of`` (``dead_letter=true``: the re-drive), up to ``limit`` a
        call; a task already run again, or past its owner's MAX_ACTIVE_JOBS, is skipped,
        saying why"""
        celery_tasks = current_app.extensions["celery"].tasks

        def refusal(task: TaskRecord) -> str | None:
            reason = retry_refusal(task, celery_tasks)
            if reason is None and over_quota(task.owner):
                reason = "its owner has MAX_ACTIVE_JOBS jobs queued or running"
            return reason

        def retried(task: TaskRecord) -> str:
            again = submit_job(
                task.task_name, task.call_kwargs, args=task.call_args, owner=task.owner,
                retry_of=task.id, callback_url=(task.webhook or {}).get("url"),
            )  # fmt: skip
            return again.task.id

        return bulk_action(filters, refusal, retried)


def retry_refusal(task: TaskRecord, celery_tasks: Any) -> str | None:
    """Why a task cannot be run again, or None."""
    if task.state not in RETRYABLE_STATES:
        return f"{task.state}: only FAILURE, REVOKED or LOST can be retried"
    if task.retried_by:
        return f"already run again as {task.retried_by}"
    if task.task_name not in celery_tasks:
        return "not a task this service can run"
    return None


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
        if task.finished:
            abort(409, message=f"Task {task_id} already finished ({task.state}).")
        lifecycle.cancel(current_app, task.id, task.owner)
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
        if task.state not in RETRYABLE_STATES:
            abort(
                409,
                message=f"Task {task_id} is {task.state}; "
                "only FAILURE, REVOKED or LOST can be retried.",
            )
        if task.task_name not in current_app.extensions["celery"].tasks:
            abort(409, message=f"Task {task_id} is not a task this service can run.")
        return accept(
            task.task_name, task.call_kwargs, headers, args=task.call_args, retry_of=task.id
        )


@blp.route("/<uuid:task_id>/purge")
class TaskPurge(MethodView):
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema, description="No such task")
    @blp.alt_response(409, schema=ErrorSchema, description="The task has not finished")
    def post(self, task_id: UUID) -> None:
        """Forget a finished task now: its record, result and files (else they expire
        after RESULT_EXPIRES)"""
        task = task_or_404(task_id)
        if not task.finished or task.state == TaskState.LOST:
            abort(409, message=f"Task {task_id} is {task.state}; cancel it or wait for its end.")
        lifecycle.purged(current_app, task)


@blp.route("/<uuid:task_id>/artifacts/<name>")
@blp.doc(
    responses={
        "200": {
            "description": "The file a job produced (a PDF, a thumbnail, a video, ...)",
            "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}},
        },
        "206": {
            "description": "The part of it a Range header asked for",
            "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}},
        },
        "304": {"description": "Not changed since the ETag in If-None-Match"},
    }
)
@blp.alt_response(404, schema=ErrorSchema, description="No such task or artifact")
@blp.alt_response(416, schema=ErrorSchema, description="The Range lies outside the file")
def task_artifact(task_id: UUID, name: str) -> Response:
    """Download a file a job produced, in ranges (a video seeks) and conditionally
    (ETag); ?download=1 asks the browser to save it"""
    task = task_or_404(task_id)
    store = artifact_store()
    relative = f"{artifacts.task_folder(task.id)}/{name}"
    stored = store.stat(relative) if name in task.artifacts else None
    if stored is None:
        abort(404, message=f"Task {task_id} has no artifact {name!r}.")
    disposition = "attachment" if request.args.get("download") else "inline"
    response = Response(
        FileWrapper(store.open(relative), DOWNLOAD_CHUNK_BYTES),
        mimetype=artifacts.content_type(name),
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
        direct_passthrough=True,
    )
    response.content_length = stored.size
    response.set_etag(stored.etag)
    response.last_modified = stored.modified
    # Only the owner may read it: a shared cache must not keep it; the browser may,
    # asking again with the ETag.
    response.cache_control.private = True
    response.cache_control.no_cache = True
    return response.make_conditional(request, accept_ranges=True, complete_length=stored.size)


#: How much of an artifact a download reads at a time.
DOWNLOAD_CHUNK_BYTES = 256 * 1024
