"""Tasks' changes as Server-Sent Events, pushed from Celery's result channels.

Celery's Redis backend publishes every state it stores on the task's result key, and
every submission is announced on its owner's channel (on the result backend's Redis), so
nothing here polls. Each stream subscribes and reads before it answers, so a stream
that cannot open is a JSON error, never a broken 200.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import redis
from celery.backends.base import Backend
from flask import Response, current_app, json, request, stream_with_context
from flask_smorest import Blueprint, abort

from ..owners import submissions_channel, visible_task_ids
from ..store import ledger, task_records
from .fanout import Fanout
from .hangups import hangup_check
from .schemas import ErrorSchema, TaskSchema, TaskSummarySchema
from .tasks import task_or_404, with_links, with_warnings

blp = Blueprint("events", __name__, url_prefix="/api/tasks", description="Follow tasks live.")

RECONNECT_MILLISECONDS = 2000
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


def sse_event(task: dict[str, Any], event_id: int | None = None) -> str:
    """One Server-Sent Event carrying the task record as JSON."""
    lines = f"retry: {RECONNECT_MILLISECONDS}\n"
    if event_id is not None:
        lines += f"id: {event_id}\n"
    return f"{lines}data: {json.dumps(task, separators=(',', ':'))}\n\n"


def present(task: dict[str, Any]) -> dict[str, Any]:
    """A task record as the API shows it."""
    return task_schema.dump(with_links(task))


def summarise(task: dict[str, Any]) -> dict[str, Any]:
    """A task record as the list and the feed show it: without its inputs, which may be
    a megabyte (the task's own record and stream carry them)."""
    return summary_schema.dump(with_links(task))


class TaskFollower:
    """Follows tasks through the process's shared subscription (``fanout``) and turns
    their messages into task records."""

    def __init__(self, client: redis.Redis, backend: Backend, fanout: Fanout) -> None:
        self.client = client
        self.backend = backend
        self.subscription = fanout.subscribe()
        self.entries: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str] = {}
        self.channels: dict[bytes, str] = {}

    def follow(self, task_id: str) -> dict[str, Any] | None:
        """Subscribe to a task, then read it: no change can fall in between."""
        channel = self.backend.get_key_for_task(task_id)
        self.subscription.add(channel)
        self.channels[channel] = task_id
        records = task_records.load_records(self.client, self.backend, [task_id])
        if not records:
            self.unfollow(task_id)
            return None
        entry, meta = records[0]
        self.entries[task_id] = entry
        return self.remember(task_records.describe(entry, meta))

    def update(self, task_id: str, payload: bytes) -> dict[str, Any]:
        """The task record after a result message; the ledger is re-read on state changes."""
        meta = task_records.decode_result(self.backend, payload)
        if meta["status"] != self.states.get(task_id):
            # The ledger changes with the state (start time, last progress, artifacts).
            self.entries[task_id] = ledger.read_entry(self.client, task_id) or self.entries[task_id]
        return self.remember(task_records.describe(self.entries[task_id], meta))

    def remember(self, task: dict[str, Any]) -> dict[str, Any]:
        """Note the task's state; stop following it once it is final."""
        self.states[task["id"]] = task["state"]
        if task["state"] in task_records.TERMINAL_STATES:
            self.unfollow(task["id"])
        return task

    def unfollow(self, task_id: str) -> None:
        """Stop listening to a task."""
        channel = self.backend.get_key_for_task(task_id)
        self.subscription.remove(channel)
        self.channels.pop(channel, None)
        self.entries.pop(task_id, None)

    def listen(self, channel: str) -> None:
        """Receive another channel's messages too (an owner's announcements)."""
        self.subscription.add(channel)

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message within ``timeout`` seconds, or None."""
        return self.subscription.get(timeout)

    def close(self) -> None:
        """Stop receiving."""
        self.subscription.close()


class ClientGone(Exception):
    """The stream's client hung up."""


@dataclass(frozen=True)
class Waiting:
    """How a stream waits for its next message: a heartbeat every ``heartbeat_seconds``
    when nothing happens, and a look at the client every ``check_seconds``."""

    heartbeat_seconds: float
    check_seconds: float
    hung_up: Callable[[], bool]

    def next_message(self, follower: TaskFollower) -> dict[str, Any] | None:
        """The follower's next message, or None when a heartbeat is due; raises
        ClientGone as soon as the client has hung up."""
        waited = 0.0
        while waited < self.heartbeat_seconds:
            wait = min(self.check_seconds, self.heartbeat_seconds - waited)
            message = follower.next_message(wait)
            if message is not None:
                return message
            waited += wait
            if self.hung_up():
                raise ClientGone
        return None

    @classmethod
    def for_request(cls) -> Waiting:
        """The current app's timings, and the current request's client."""
        return cls(
            heartbeat_seconds=current_app.config["EVENTS_HEARTBEAT_SECONDS"],
            check_seconds=current_app.config["EVENTS_CLIENT_CHECK_SECONDS"],
            hung_up=hangup_check(request.environ),
        )


def task_event_stream(
    follower: TaskFollower, task: dict[str, Any], waiting: Waiting
) -> Iterator[str]:
    """The task now, then once per state or progress change, ending after a final state
    (or as soon as the client hangs up)."""
    try:
        sent = 1
        yield sse_event(present(task), sent)
        while task["state"] not in task_records.TERMINAL_STATES:
            message = waiting.next_message(follower)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            task = follower.update(task["id"], message["data"])
            sent += 1
            yield sse_event(present(task), sent)
    except ClientGone:
        return
    finally:
        follower.close()


def owner_event_stream(
    follower: TaskFollower,
    announcements: str,
    unfinished: list[dict[str, Any]],
    waiting: Waiting,
) -> Iterator[str]:
    """The caller's unfinished tasks now, then every new task announced on the channel
    ``announcements`` and every change, until the client hangs up.

    One connection serves a whole page, however many tasks it shows.
    """
    announced = announcements.encode()
    try:
        yield ": connected\n"  # a comment, not an event: the client knows the feed is open
        for task in unfinished:
            yield sse_event(summarise(task))
        while True:
            message = waiting.next_message(follower)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            if message["channel"] == announced:
                task = follower.follow(message["data"].decode())
                if task is not None:
                    with_warnings([task])  # a queue nobody consumes shows at once
            elif message["channel"] in follower.channels:
                task = follower.update(follower.channels[message["channel"]], message["data"])
            else:
                continue  # a late message of a task already final
            if task is not None:
                yield sse_event(summarise(task))
    except ClientGone:
        return
    finally:
        follower.close()


def event_stream_response(stream: Iterator[str]) -> Response:
    """A text/event-stream response that proxies pass through unbuffered."""
    return Response(
        stream_with_context(stream),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def new_follower() -> TaskFollower:
    """A follower on the current app's ledger and result backend."""
    return TaskFollower(
        current_app.extensions["redis"],
        current_app.extensions["celery"].backend,
        current_app.extensions["fanout"],
    )


@blp.route("/events")
@blp.doc(responses={"200": SSE_RESPONSE})
@blp.alt_response(503, schema=ErrorSchema, description="The feed cannot be opened")
def task_feed() -> Response:
    """Follow all your tasks live: every unfinished one now, then each new task and change"""
    announcements = submissions_channel()
    follower = new_follower()
    try:
        follower.listen(announcements)
        recent = visible_task_ids(follower.client, limit=FEED_RECENT_TASKS)
        unfinished = [
            followed
            for task in task_records.load_tasks(follower.client, follower.backend, recent)
            if task["state"] not in task_records.TERMINAL_STATES
            and (followed := follower.follow(task["id"])) is not None
        ]
    except BaseException:
        follower.close()
        raise
    with_warnings(unfinished)
    return event_stream_response(
        owner_event_stream(follower, announcements, unfinished, Waiting.for_request())
    )


@blp.route("/<uuid:task_id>/events")
@blp.doc(responses={"200": SSE_RESPONSE, "204": FINISHED_RESPONSE})
@blp.alt_response(404, schema=ErrorSchema, description="No such task")
@blp.alt_response(503, schema=ErrorSchema, description="The stream cannot be opened")
def task_events(task_id: UUID) -> Response:
    """Follow a task live: its record now, then at every change, until it finishes"""
    known = task_or_404(task_id)
    if known["state"] in task_records.TERMINAL_STATES and "Last-Event-ID" in request.headers:
        # A reconnect after the final event: the SSE spec's "stop reconnecting".
        return Response(status=204)
    follower = new_follower()
    try:
        task = follower.follow(known["id"])
    except BaseException:
        follower.close()
        raise
    if task is None:  # expired in between
        follower.close()
        abort(404, message=f"No task {task_id}: it never existed or has expired.")
    return event_stream_response(task_event_stream(follower, task, Waiting.for_request()))
