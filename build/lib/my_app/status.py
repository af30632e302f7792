"""The read model: a task's status as every reader shows it (GET, the list, both event
streams, the page, ``/status/<id>``), from one round trip to Redis.

A read joins each task's ledger entry with Celery's stored result and the workers'
heartbeats (``Ledger.read``), decodes them into ``TaskRecord`` values, calls LOST a task
whose message is gone, and warns where a task's worker is gone or its queue has none.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from .records import (
    HELD_STATES,
    TaskRecord,
    TaskState,
    decode_record,
    progress_report,
    with_percent,
)
from .store.broker_queues import recent_waiting_messages
from .store.ledger import Ledger, ledger_of


def read_task(task_id: str) -> TaskRecord | None:
    """The task with this id, or None when the ledger does not know it."""
    found = read_tasks([task_id])
    return found[0] if found else None


def read_tasks(task_ids: list[str]) -> list[TaskRecord]:
    """The known tasks among ``task_ids``, in order, as every reader shows them."""
    if not task_ids:
        return []
    ledger = ledger_of()
    records, workers = decoded(ledger, task_ids)
    return with_warnings(checked_for_lost(ledger, records), workers)


def decoded(ledger: Ledger, task_ids: list[str]) -> tuple[list[TaskRecord], dict[str, Any]]:
    """The known tasks among ``task_ids`` as stored, and the live workers."""
    rows, workers = ledger.read(task_ids)
    records = [decode_record(raw, result_meta(ledger, payload)) for raw, payload in rows]
    return [record for record in records if record is not None], workers


def result_meta(ledger: Ledger, payload: bytes | None) -> dict[str, Any] | None:
    """Celery's result meta of a stored or published payload, decoded as the backend
    encoded it (any serializer, compression or key prefix); None if it cannot be read."""
    if not payload:
        return None
    try:
        return ledger.results.decode_result(payload)
    except Exception:  # not a result this backend wrote: as if none
        return None


def updated(record: TaskRecord, payload: bytes) -> TaskRecord:
    """A followed task after a message on its result channel, as that message says (so a
    stream shows every step, however late it reads): progress within PROGRESS needs no
    read; a change of state reads the entry again (its start, last progress, artifacts).
    A running or finished task needs no warning about waiting, so no heartbeat is read."""
    ledger = ledger_of()
    meta = result_meta(ledger, payload)
    if meta is None:
        return record
    if meta.get("status") == record.state == TaskState.PROGRESS:
        progress = progress_report(meta.get("result"))
        if progress is not None:
            return replace(record, progress=with_percent(progress, TaskState.PROGRESS))
    fresh = decode_record(ledger.read_entry(record.id), meta)
    return fresh if fresh is not None else record


def checked_for_lost(ledger: Ledger, records: list[TaskRecord]) -> list[TaskRecord]:
    """The records, with LOST for a QUEUED task whose message is in no queue and that no
    worker took.

    Only tasks waiting for over LOST_CHECK_AFTER_SECONDS are checked: those whose queue
    is empty are read again (a worker may have taken the message meanwhile) before they
    are called lost.
    """
    now = datetime.now(UTC)
    grace = current_app.config["LOST_CHECK_AFTER_SECONDS"]
    suspects = [r for r in records if r.waiting and waited(r, now) > grace]
    if not suspects:
        return records
    depths = recent_waiting_messages(ledger.results.app, {r.queue for r in suspects})
    candidates = [r.id for r in suspects if depths[r.queue] == 0]
    if not candidates:
        return records
    still_waiting = {r.id for r in decoded(ledger, candidates)[0] if r.waiting}
    return [r.as_lost() if r.id in still_waiting else r for r in records]


def waited(record: TaskRecord, now: datetime) -> float:
    """Seconds since the task was queued (0 if its time cannot be read)."""
    try:
        return (now - datetime.fromisoformat(record.submitted_at)).total_seconds()
    except (TypeError, ValueError):
        return 0.0


def with_warnings(records: list[TaskRecord], workers: dict[str, Any]) -> list[TaskRecord]:
    """The records, with a ``warning`` on each one held (running, or fetched ahead) by a
    worker whose heartbeat has expired (its message is queued again when its lease runs
    out, my_app.worker.leases) and on each waiting one whose queue no live worker
    consumes (the classic "stuck on PENDING")."""
    consumed = {queue for beat in workers.values() for queue in beat.get("queues", ())}
    shown = []
    for record in records:
        if record.worker and record.state in HELD_STATES and record.worker not in workers:
            record = record.with_warning(
                f"Its worker {record.worker} has not been seen for a while: the job will "
                "be queued again and run on another worker."
            )
        elif record.waiting and record.queue not in consumed:
            record = record.with_warning(
                f"No worker consumes queue {record.queue}: the job waits until one does."
            )
        shown.append(record)
    return shown
