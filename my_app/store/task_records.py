"""A task as the API shows it: the ledger entry joined with Celery's result.

Results are read through the result backend's own key names and decoder, so every
``result_serializer``, ``result_compression`` and ``global_keyprefix`` reads correctly.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from functools import cache
from typing import Any

import redis
from celery import states
from celery.backends.base import Backend

from . import keys, ledger

#: Every state a task can be in, as the API names them. LOST: still QUEUED in the ledger,
#: but its message is in no queue and no worker took it (a purged queue, for instance).
STATES = ("QUEUED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "LOST")
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "LOST"})
#: The states in which a worker that took a task's message holds it unacknowledged.
HELD_STATES = frozenset({"QUEUED", "STARTED", "PROGRESS", "RETRY"})
Record = tuple[dict[str, Any], dict[str, Any] | None]


def load_task(client: redis.Redis, backend: Backend, task_id: str) -> dict[str, Any] | None:
    """The task with this id, or None when the ledger has never seen it."""
    found = load_tasks(client, backend, [task_id])
    return found[0] if found else None


def load_tasks(client: redis.Redis, backend: Backend, task_ids: list[str]) -> list[dict[str, Any]]:
    """The known tasks among ``task_ids``, in order."""
    return [describe(entry, meta) for entry, meta in load_records(client, backend, task_ids)]


def load_records(client: redis.Redis, backend: Backend, task_ids: list[str]) -> list[Record]:
    """The ledger entry and Celery result meta of each known task.

    Results first: a worker writes the ledger (artifacts, last progress) before it
    stores a final state, so an entry read after a final result is complete. When the
    results live in the ledger's own Redis database (the default), both go in one
    pipeline on the backend's connection; otherwise one round trip each.
    """
    if not task_ids:
        return []
    if shares_database(client, backend):
        pipe = backend.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.get(backend.get_key_for_task(task_id))
            pipe.hgetall(keys.task_key(task_id))
        replies = pipe.execute()
        metas = [decode_result(backend, payload) for payload in replies[0::2]]
        entries = [ledger.decode_entry(as_text(raw)) for raw in replies[1::2]]
    else:
        metas = read_results(backend, task_ids)
        entries = ledger.read_entries(client, task_ids)
    return [(entry, meta) for entry, meta in zip(entries, metas, strict=True) if entry]


@cache
def shares_database(client: redis.Redis, backend: Backend) -> bool:
    """Whether the result backend's Redis database is the ledger's own."""
    ours = client.connection_pool.connection_kwargs
    theirs = backend.connparams
    return all(
        ours.get(name) == theirs.get(name)
        for name in ("host", "port", "path", "db", "username", "password")
    )


def as_text(raw: dict[bytes, bytes]) -> dict[str, str]:
    """A hash read on a bytes connection, as the ledger's text client would read it."""
    return {name.decode(): value.decode() for name, value in raw.items()}


def read_results(backend: Backend, task_ids: list[str]) -> list[dict[str, Any] | None]:
    """Celery's result meta of each task (None while it has none), in one MGET."""
    if not task_ids:
        return []
    raw = backend.mget([backend.get_key_for_task(task_id) for task_id in task_ids])
    return [decode_result(backend, payload) for payload in raw]


def decode_result(backend: Backend, payload: bytes | None) -> dict[str, Any] | None:
    """One stored (or published) result, decoded as the backend encoded it."""
    return backend.decode_result(payload) if payload else None


def describe(entry: dict[str, Any], meta: dict[str, Any] | None) -> dict[str, Any]:
    """Combine a ledger entry and Celery's result meta into the API's task record."""
    celery_state = meta["status"] if meta else states.PENDING
    if celery_state == states.PENDING:
        state = "STARTED" if entry.get("started_at") else "QUEUED"
    else:
        state = celery_state
    payload = meta.get("result") if meta else None
    result = error = None
    progress = entry["progress"]
    if state == "SUCCESS":
        result = payload
    elif state == "PROGRESS" and isinstance(payload, dict):
        progress = payload
    elif state in states.EXCEPTION_STATES and payload is not None:
        error = describe_exception(payload)
    inputs = entry["inputs"] if not entry["args"] else {"*args": entry["args"], **entry["inputs"]}
    return {
        "id": entry["id"],
        "kind": entry["kind"],
        "owner": entry["owner"],
        "queue": entry.get("queue"),
        "state": state,
        "progress": with_percent(progress, state),
        "result": result,
        "error": error,
        "inputs": json_compatible(inputs),
        "artifacts": entry["artifacts"],
        "retry_of": entry.get("retry_of"),
        "worker": entry.get("worker"),
        "submitted_at": entry["submitted_at"],
        "received_at": entry.get("received_at"),
        "attempts": int(entry.get("attempts", 0)),
        "started_at": entry.get("started_at"),
        "finished_at": meta.get("date_done") if meta and state in TERMINAL_STATES else None,
        "retry_at": entry.get("retry_at") if state == "RETRY" else None,
    }


def mark_lost(task: dict[str, Any]) -> dict[str, Any]:
    """The record of a QUEUED task whose message is gone from its queue."""
    message = (
        f"Its message is no longer in queue {task['queue']!r} and no worker took it "
        "(the queue was purged, or the message lost). Retry to run it again."
    )
    return {**task, "state": "LOST", "error": {"type": "MessageLost", "message": message}}


def describe_exception(exception: BaseException | Any) -> dict[str, str]:
    """Celery's stored exception as ``{"type", "message"}``, never a traceback."""
    if not isinstance(exception, BaseException):
        return {"type": "Error", "message": str(exception)}
    error_type = type(exception).__name__
    message = " ".join(str(part) for part in exception.args)
    if error_type == "TimeLimitExceeded":  # Celery's message is only the limit
        message = f"hard time limit exceeded ({message} s): the job's process was killed"
    return {"type": error_type, "message": message}


def with_percent(progress: dict[str, Any] | None, state: str) -> dict[str, Any] | None:
    """Progress with its percentage; a finished task that reported none is at 100 %."""
    if progress is None:
        return {"current": 1, "total": 1, "percent": 100} if state == "SUCCESS" else None
    current, total = progress["current"], progress["total"]
    if total:
        percent = min(100, round(100 * current / total))
    else:
        percent = 100 if state == "SUCCESS" else 0
    return {**progress, "percent": percent}


def json_compatible(value: Any) -> Any:
    """Inputs as JSON shows them: dates in ISO 8601, UUIDs and decimals as strings."""
    if isinstance(value, dict):
        return {key: json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_compatible(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    return value
