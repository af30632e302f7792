"""Following tasks live: the routes of the Server-Sent Event streams (my_app.live)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, request
from flask_smorest import Blueprint, abort

from ..live.streams import (
    Waiting,
    event_stream_response,
    new_follower,
    owner_event_stream,
    task_event_stream,
)
from ..owners import submissions_channel, visible_task_ids
from ..records import TaskRecord
from ..status import read_tasks
from .schemas import ErrorSchema, TaskSchema, TaskSummarySchema
from .tasks import task_or_404, with_links

blp = Blueprint("events", __name__, url_prefix="/api/tasks", description="Follow tasks live.")

#: How many of an owner's newest tasks the feed looks through for unfinished ones.
FEED_RECENT_TASKS = 100
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
FINISHED_RESPONSE = {"description": "The task has finished: reconnecting clients stop (SSE)"}

task_schema = TaskSchema()
summary_schema = TaskSummarySchema()


def present(task: TaskRecord) -> dict[str, Any]:
    """A task record as the API shows it."""
    return task_schema.dump(with_links(task))


def summarise(task: TaskRecord) -> dict[str, Any]:
    """A task record as the list and the feed show it: without its inputs, which may be
    a megabyte (the task's own record and stream carry them)."""
    return summary_schema.dump(with_links(task))


@blp.route("/events")
@blp.doc(responses={"200": SSE_RESPONSE})
@blp.alt_response(503, schema=ErrorSchema, description="The feed cannot be opened")
def task_feed() -> Response:
    """Follow all your tasks live: every unfinished one now, then each new task and change"""
    announcements = submissions_channel()
    follower = new_follower()
    try:
        follower.listen(announcements)
        recent = visible_task_ids(limit=FEED_RECENT_TASKS)
        unfinished = [
            followed
            for task in read_tasks(recent)
            if not task.finished and (followed := follower.follow(task.id)) is not None
        ]
    except BaseException:
        follower.close()
        raise
    return event_stream_response(
        owner_event_stream(follower, announcements, unfinished, Waiting.for_request(), summarise)
    )


@blp.route("/<uuid:task_id>/events")
@blp.doc(responses={"200": SSE_RESPONSE, "204": FINISHED_RESPONSE})
@blp.alt_response(404, schema=ErrorSchema, description="No such task")
@blp.alt_response(503, schema=ErrorSchema, description="The stream cannot be opened")
def task_events(task_id: UUID) -> Response:
    """Follow a task live: its record now, then at every change, until it finishes"""
    known = task_or_404(task_id)
    if known.finished and "Last-Event-ID" in request.headers:
        # A reconnect after the final event: the SSE spec's "stop reconnecting".
        return Response(status=204)
    follower = new_follower()
    try:
        task = follower.follow(known.id)
    except BaseException:
        follower.close()
        raise
    if task is None:  # expired in between
        follower.close()
        abort(404, message=f"No task {task_id}: it never existed or has expired.")
    return event_stream_response(task_event_stream(follower, task, Waiting.for_request(), present))
