"""Quotas each owner but an admin lives within, besides the submission rate
(``limits.py``): jobs queued or running at once, bytes of inputs one submission stores,
and the longest slow job. Each is a JSON error the caller can act on."""

from __future__ import annotations

from flask import current_app
from flask_smorest import abort

from ..auth import current_caller
from ..status import read_tasks
from ..store.ledger import ledger_of


def input_bytes_limit() -> int | None:
    """``MAX_INPUT_BYTES`` for the caller (None for an admin): ``submit_job`` measures the
    inputs as the ledger encodes them, once, and refuses with 413 beyond it."""
    return None if current_caller().admin else current_app.config["MAX_INPUT_BYTES"]


def over_quota(owner: str) -> bool:
    """Whether ``owner`` (not an admin's own call) has MAX_ACTIVE_JOBS queued or running:
    for a bulk retry, which queues for each task's owner."""
    limit = current_app.config["MAX_ACTIVE_JOBS"]
    caller = current_caller()
    if not limit or (caller.admin and owner == caller.owner):
        return False
    return ledger_of().count_active(owner) >= limit


def check_active_jobs() -> None:
    """429 when the caller already has ``MAX_ACTIVE_JOBS`` jobs queued or running.

    The owner's active set gains each new task; finished ones leave it only when the
    owner nears the quota, so a submission normally costs one SCARD. Concurrent
    submissions can overshoot the quota by the few that race past the count."""
    caller = current_caller()
    limit = current_app.config["MAX_ACTIVE_JOBS"]
    if caller.admin or not limit:
        return
    ledger = ledger_of()
    if ledger.count_active(caller.owner) < limit:
        return
    active = ledger.active_task_ids(caller.owner)
    shown = {task.id: task for task in read_tasks(sorted(active))}
    finished = {task_id for task_id in active if task_id not in shown or shown[task_id].finished}
    ledger.drop_active(caller.owner, finished)
    if len(active) - len(finished) >= limit:
        abort(
            429,
            message=f"You have {limit} jobs queued or running, the most you may have at "
            "once (MAX_ACTIVE_JOBS); submit more when some finish.",
            headers={"Retry-After": "10"},
        )


def check_job_seconds(seconds: int, location: str = "json") -> None:
    """422, on the field, when a non-admin asks for a slow job longer than
    ``MAX_JOB_SECONDS``: long jobs hold a worker slot for everyone."""
    limit = current_app.config["MAX_JOB_SECONDS"]
    if seconds > limit and not current_caller().admin:
        abort(
            422,
            message="Invalid seconds.",
            errors={location: {"seconds": [f"At most {limit} seconds (MAX_JOB_SECONDS)."]}},
        )
