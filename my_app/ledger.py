"""The task ledger: what was accepted, by whom, with which inputs, kept in Redis.

Celery answers PENDING both for a queued task and for an id it has never seen; the
ledger tells them apart, keeps the inputs a retry needs, and lists a caller's tasks.
Every key expires with the task's result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from redis.commands.core import Script

from .redis_io import run_script

PREFIX = "jobs:"
#: Ledger fields named ``artifact:<name>`` list a task's artifacts (value: media type).
ARTIFACT_FIELD_PREFIX = "artifact:"


def task_key(task_id: str) -> str:
    """The hash holding one task's ledger entry."""
    return f"{PREFIX}task:{task_id}"


def owner_key(owner: str) -> str:
    """The sorted set of an owner's task ids, scored by submission time."""
    return f"{PREFIX}owner:{owner}"


def owner_channel(owner: str) -> str:
    """The channel announcing each new task of an owner (its id)."""
    return f"{PREFIX}owner:{owner}:submitted"


def rate_key(client_address: str, window: int) -> str:
    """The counter of a client's submissions in one rate-limit window."""
    return f"{PREFIX}rate:{client_address}:{window}"


def idempotency_key(owner: str, key: str) -> str:
    """The string remembering which task an Idempotency-Key created."""
    return f"{PREFIX}idempotency:{owner}:{key}"


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


def read_entry(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """One task's entry with its JSON fields decoded, or None when unknown or expired."""
    return decode_entry(client.hgetall(task_key(task_id)))


def decode_entry(raw: dict[str, str]) -> dict[str, Any] | None:
    """Turn a raw ledger hash into an entry; None for a hash without a submission."""
    if "kind" not in raw:
        # Submission writes the entry with the message, but a worker may still touch the
        # hash of a task whose entry expired while it waited: that task is not the ledger's.
        return None
    entry: dict[str, Any] = dict(raw)
    entry["inputs"] = json.loads(raw["inputs"])
    entry["progress"] = json.loads(raw["progress"]) if "progress" in raw else None
    entry["cancel_requested"] = "cancel_requested" in raw
    entry["artifacts"] = sorted(
        field.removeprefix(ARTIFACT_FIELD_PREFIX)
        for field in raw
        if field.startswith(ARTIFACT_FIELD_PREFIX)
    )
    return entry


# Atomically: a task cancelled while queued must never look started.
MARK_STARTED = """
if redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then return 1 end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""


@cache
def mark_started_script(client: redis.Redis) -> Script:
    """MARK_STARTED, registered once per client."""
    return client.register_script(MARK_STARTED)


def mark_started(client: redis.Redis, task_id: str, expires: int) -> bool:
    """Record that a worker started the task; True (and no start) if it was cancelled."""
    script = mark_started_script(client)
    return bool(run_script(client, script, keys=[task_key(task_id)], args=[utc_now(), expires]))


def record_outcome(client: redis.Redis, task_id: str, outcome: dict[str, Any]) -> None:
    """Remember that a side effect happened (an email was accepted), with its result."""
    client.hset(task_key(task_id), "outcome", json.dumps(outcome))


def recorded_outcome(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """The result of a side effect that already happened, so it is not repeated."""
    outcome = client.hget(task_key(task_id), "outcome")
    return json.loads(outcome) if outcome else None


def record_retry(client: redis.Redis, task_id: str, retry_at: str) -> None:
    """Note when a retrying task's next attempt is due."""
    client.hset(task_key(task_id), "retry_at", retry_at)


def cancel_requested(client: redis.Redis, task_id: str) -> bool:
    """Whether someone asked to cancel the task."""
    return bool(client.hexists(task_key(task_id), "cancel_requested"))


def request_cancel(client: redis.Redis, task_id: str) -> None:
    """Ask the task to stop at its next step (or never start)."""
    client.hset(task_key(task_id), "cancel_requested", utc_now())


def record_progress(client: redis.Redis, task_id: str, progress: dict[str, Any]) -> None:
    """Keep the last progress, so a finished task still shows how far it got."""
    client.hset(task_key(task_id), "progress", json.dumps(progress))


def owner_task_ids(client: redis.Redis, owner: str, limit: int | None = None) -> list[str]:
    """An owner's task ids, newest first (the ``limit`` newest, if given)."""
    return client.zrevrange(owner_key(owner), 0, -1 if limit is None else limit - 1)
