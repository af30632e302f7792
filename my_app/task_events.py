"""A task's changes as Server-Sent Events, pushed from Celery's result channel."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import redis

from . import ledger, task_state

RECONNECT_MILLISECONDS = 2000


def sse_event(task: dict[str, Any]) -> str:
    """One Server-Sent Event carrying the task record as JSON."""
    return f"data: {json.dumps(task, separators=(',', ':'))}\n\n"


def task_event_stream(
    client: redis.Redis,
    task_id: str,
    *,
    heartbeat_seconds: float,
    present: Callable[[dict[str, Any]], dict[str, Any]] = lambda task: task,
) -> Iterator[str]:
    """The task now, then once per state or progress change, ending after a final state.

    Celery's Redis backend publishes every stored state on the task's result key, so
    the stream subscribes there first and reads the current state second: no change
    falls between the two, and nothing polls.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(task_state.result_key(task_id))
        task = task_state.load_task(client, task_id)
        if task is None:
            return
        yield f"retry: {RECONNECT_MILLISECONDS}\n" + sse_event(present(task))
        entry = ledger.read_entry(client, task_id)
        while task["state"] not in task_state.TERMINAL_STATES:
            message = pubsub.get_message(timeout=heartbeat_seconds)
            if message is None:
                yield ": heartbeat\n\n"
                continue
            meta = json.loads(message["data"])
            if meta["status"] != task["state"]:
                # The ledger changes with the state (start time, last progress).
                entry = ledger.read_entry(client, task_id) or entry
            task = task_state.describe(entry, meta)
            yield sse_event(present(task))
    finally:
        pubsub.close()
