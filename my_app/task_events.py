"""Tasks' changes as Server-Sent Events, pushed from Celery's result channels.

Celery's Redis backend publishes every state it stores on the task's result key, and
the ledger announces each submission on its owner's channel, so nothing here polls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import redis

from . import ledger, task_state

RECONNECT_MILLISECONDS = 2000
Present = Callable[[dict[str, Any]], dict[str, Any]]


def sse_event(task: dict[str, Any]) -> str:
    """One Server-Sent Event carrying the task record as JSON."""
    return f"data: {json.dumps(task, separators=(',', ':'))}\n\n"


class TaskFollower:
    """Follows tasks on a pubsub connection and turns their messages into task records."""

    def __init__(self, client: redis.Redis, pubsub: redis.client.PubSub) -> None:
        self.client = client
        self.pubsub = pubsub
        self.entries: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str] = {}

    def follow(self, task_id: str) -> dict[str, Any] | None:
        """Subscribe to a task, then read it: no change can fall in between."""
        self.pubsub.subscribe(task_state.result_key(task_id))
        records = task_state.load_records(self.client, [task_id])
        if not records:
            self.unfollow(task_id)
            return None
        entry, meta = records[0]
        self.entries[task_id] = entry
        return self.remember(task_state.describe(entry, meta))

    def update(self, task_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """The task record after a result message; the ledger is re-read on state changes."""
        if meta["status"] != self.states.get(task_id):
            # The ledger changes with the state (start time, last progress, artifacts).
            self.entries[task_id] = ledger.read_entry(self.client, task_id) or self.entries[task_id]
        return self.remember(task_state.describe(self.entries[task_id], meta))

    def remember(self, task: dict[str, Any]) -> dict[str, Any]:
        """Note the task's state; stop following it once it is final."""
        self.states[task["id"]] = task["state"]
        if task["state"] in task_state.TERMINAL_STATES:
            self.unfollow(task["id"])
        return task

    def unfollow(self, task_id: str) -> None:
        """Stop listening to a task."""
        self.pubsub.unsubscribe(task_state.result_key(task_id))
        self.entries.pop(task_id, None)

    def message_task_id(self, channel: str) -> str:
        """The task a result channel belongs to."""
        return channel.removeprefix(task_state.result_key(""))


def task_event_stream(
    client: redis.Redis, task_id: str, *, heartbeat_seconds: float, present: Present
) -> Iterator[str]:
    """One task now, then once per state or progress change, ending after a final state."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    follower = TaskFollower(client, pubsub)
    try:
        task = follower.follow(task_id)
        if task is None:
            return
        yield f"retry: {RECONNECT_MILLISECONDS}\n" + sse_event(present(task))
        while task["state"] not in task_state.TERMINAL_STATES:
            message = pubsub.get_message(timeout=heartbeat_seconds)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            task = follower.update(task_id, json.loads(message["data"]))
            yield sse_event(present(task))
    finally:
        pubsub.close()


def owner_event_stream(
    client: redis.Redis,
    owner: str,
    *,
    heartbeat_seconds: float,
    present: Present,
    recent: int = 100,
) -> Iterator[str]:
    """All of an owner's unfinished tasks now, then every new task and every change.

    One connection serves a whole page, however many tasks it shows.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    follower = TaskFollower(client, pubsub)
    announcements = ledger.owner_channel(owner)
    try:
        pubsub.subscribe(announcements)
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
        for entry, meta in task_state.load_records(
            client, ledger.owner_task_ids(client, owner, limit=recent)
        ):
            if task_state.describe(entry, meta)["state"] not in task_state.TERMINAL_STATES:
                task = follower.follow(entry["id"])
                if task is not None:
                    yield sse_event(present(task))
        while True:
            message = pubsub.get_message(timeout=heartbeat_seconds)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            if message["channel"] == announcements:
                task = follower.follow(message["data"])
            else:
                task_id = follower.message_task_id(message["channel"])
                if task_id not in follower.entries:
                    continue  # a late message of a task already final
                task = follower.update(task_id, json.loads(message["data"]))
            if task is not None:
                yield sse_event(present(task))
    finally:
        pubsub.close()
