"""A task as the API shows it: the ledger entry joined with Celery's result in Redis."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import states
from celery.backends.redis import RedisBackend

from . import ledger
from .redis_io import send_together

#: Every state a task can be in, as the API names them.
STATES = ("QUEUED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


def result_key(task_id: str) -> str:
    """Where Celery's Redis backend keeps a task's state, and the channel it publishes on."""
    return f"{RedisBackend.task_keyprefix}{task_id}"


def load_task(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """The task with this id, or None when the ledger has never seen it."""
    found = load_tasks(client, [task_id])
    return found[0] if found else None


def load_tasks(client: redis.Redis, task_ids: list[str]) -> list[dict[str, Any]]:
    """The known tasks among ``task_ids``, in order; one round trip for all of them."""
    return [describe(entry, meta) for entry, meta in load_records(client, task_ids)]


def load_records(
    client: redis.Redis, task_ids: list[str]
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The ledger entry and Celery result meta of each known task, in one round trip."""
    commands = []
    for task_id in task_ids:
        commands += [("HGETALL", ledger.task_key(task_id)), ("GET", result_key(task_id))]
    replies = send_together(client, commands)
    records = []
    for raw_entry, raw_meta in zip(replies[::2], replies[1::2], strict=True):
        entry = ledger.decode_entry(raw_entry)
        if entry is not None:
            records.append((entry, json.loads(raw_meta) if raw_meta else None))
    return records


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
    elif state in ("FAILURE", "REVOKED", "RETRY") and isinstance(payload, dict):
        error = describe_exception(payload)
    return {
        "id": entry["id"],
        "kind": entry["kind"],
        "owner": entry["owner"],
        "state": state,
        "progress": with_percent(progress, state),
        "result": result,
        "error": error,
        "inputs": entry["inputs"],
        "artifacts": entry["artifacts"],
        "retry_of": entry.get("retry_of"),
        "submitted_at": entry["submitted_at"],
        "started_at": entry.get("started_at"),
        "finished_at": meta.get("date_done") if meta and state in TERMINAL_STATES else None,
        "retry_at": entry.get("retry_at") if state == "RETRY" else None,
    }


def describe_exception(payload: dict[str, Any]) -> dict[str, str]:
    """Celery's serialised exception as ``{"type", "message"}``, never a traceback."""
    error_type = payload.get("exc_type", "Error")
    message = payload.get("exc_message", "")
    if isinstance(message, (list, tuple)):
        message = " ".join(str(part) for part in message)
    if error_type == "TimeLimitExceeded":  # Celery's message is only the limit
        message = f"hard time limit exceeded ({message} s): the job's process was killed"
    return {"type": error_type, "message": str(message)}


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
