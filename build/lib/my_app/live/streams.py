"""Tasks' changes as Server-Sent Events, pushed from Celery's result channels.

Celery's Redis backend publishes every state it stores on the task's result channel, and
every submission is announced on its owner's channel (my_app.lifecycle), so nothing here
polls: a stream follows channels through the process's one subscription (``fanout``) and
turns each message into a record through the read model (``my_app.status``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, json, request, stream_with_context

from .. import status
from ..records import TaskRecord
from .fanout import Fanout
from .hangups import hangup_check

RECONNECT_MILLISECONDS = 2000

#: How a stream shows a record: the API's schema dump of it.
Show = Callable[[TaskRecord], dict[str, Any]]


def sse_event(task: dict[str, Any], event_id: int | None = None) -> str:
    """One Server-Sent Event carrying the task record as JSON."""
    lines = f"retry: {RECONNECT_MILLISECONDS}\n"
    if event_id is not None:
        lines += f"id: {event_id}\n"
    return f"{lines}data: {json.dumps(task, separators=(',', ':'))}\n\n"


class TaskFollower:
    """Follows tasks through the process's shared subscription and keeps each one's
    latest record."""

    def __init__(self, fanout: Fanout) -> None:
        self.backend = fanout.backend
        self.subscription = fanout.subscribe()
        self.records: dict[str, TaskRecord] = {}
        self.channels: dict[bytes, str] = {}

    def follow(self, task_id: str) -> TaskRecord | None:
        """Subscribe to a task, then read it: no change can fall in between."""
        channel = self.backend.get_key_for_task(task_id)
        self.subscription.add(channel)
        self.channels[channel] = task_id
        record = status.read_task(task_id)
        if record is None:
            self.unfollow(task_id)
            return None
        return self.remember(record)

    def update(self, task_id: str, payload: bytes) -> TaskRecord:
        """The task's record after a message on its result channel."""
        return self.remember(status.updated(self.records[task_id], payload))

    def remember(self, task: TaskRecord) -> TaskRecord:
        """Keep the task's record; stop following it once it is final."""
        self.records[task.id] = task
        if task.finished:
            self.unfollow(task.id)
        return task

    def unfollow(self, task_id: str) -> None:
        """Stop listening to a task."""
        channel = self.backend.get_key_for_task(task_id)
        self.subscription.remove(channel)
        self.channels.pop(channel, None)
        self.records.pop(task_id, None)

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
    follower: TaskFollower, task: TaskRecord, waiting: Waiting, show: Show
) -> Iterator[str]:
    """The task now, then once per state or progress change, ending after a final state
    (or as soon as the client hangs up)."""
    try:
        sent = 1
        yield sse_event(show(task), sent)
        while not task.finished:
            message = waiting.next_message(follower)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            task = follower.update(task.id, message["data"])
            sent += 1
            yield sse_event(show(task), sent)
    except ClientGone:
        return
    finally:
        follower.close()


def owner_event_stream(
    follower: TaskFollower,
    announcements: str,
    unfinished: list[TaskRecord],
    waiting: Waiting,
    show: Show,
) -> Iterator[str]:
    """The caller's unfinished tasks now, then every new task announced on the channel
    ``announcements`` and every change, until the client hangs up.

    One connection serves a whole page, however many tasks it shows.
    """
    announced = announcements.encode()
    try:
        yield ": connected\n"  # a comment, not an event: the client knows the feed is open
        for task in unfinished:
            yield sse_event(show(task))
        while True:
            message = waiting.next_message(follower)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            if message["channel"] == announced:
                task = follower.follow(message["data"].decode())
            elif message["channel"] in follower.channels:
                task = follower.update(follower.channels[message["channel"]], message["data"])
            else:
                continue  # a late message of a task already final
            if task is not None:
                yield sse_event(show(task))
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
    """A follower on the current app's fan-out."""
    return TaskFollower(current_app.extensions["fanout"])
