"""Queueing a job from the API: quotas on its inputs, an Idempotency-Key, then Celery's
own ``apply_async``; the lifecycle (``my_app.lifecycle``) records it once it is
published, as it does for every other producer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import uuid
from flask import current_app
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import lifecycle, schedules, status
from .records import TaskRecord, decode_record
from .store import idempotency
from .store.ledger import ledger_of

logger = logging.getLogger(__name__)

KWARGSREPR_MAX = 1024


@dataclass(frozen=True)
class Submission:
    """The task a submission queued; ``created`` is False when a key replayed an earlier one."""

    task: TaskRecord
    created: bool = True


class InputsTooLarge(Exception):
    """A submission whose inputs the ledger would store in more bytes than allowed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The job's inputs are {size} bytes; one submission may store at most {limit} "
            "(MAX_INPUT_BYTES)."
        )


class PublishUnconfirmed(Exception):
    """The broker did not answer a publish in time: the task may or may not be queued."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


def unconfirmed(error: BaseException) -> bool:
    """Whether a failed publish timed out waiting for an answer (the command may have
    reached the broker), rather than failing to connect (nothing was sent)."""
    while error is not None:
        if isinstance(error, (TimeoutError, RedisTimeoutError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def submit_job(
    task_name: str,
    inputs: dict[str, Any],
    *,
    owner: str,
    args: list[Any] | None = None,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
    max_input_bytes: int | None = None,
    run_at: datetime | None = None,
    callback_url: str | None = None,
) -> Submission:
    """Queue the task ``task_name`` with ``inputs`` (its keyword arguments) for ``owner``.

    An ``idempotency_key`` seen before with the same task and inputs returns the earlier
    task instead; a key that is claimed but whose publish fails is released. Inputs that
    the ledger would store in more than ``max_input_bytes`` raise ``InputsTooLarge``
    before anything is written; a Redis nearly full (``STORAGE_HEADROOM_PERCENT``)
    raises ``StorageFull``. With ``run_at``, the job is held until then (a one-off job,
    queued by beat: my_app.schedules) rather than queued now; with ``callback_url``, its
    end is sent there (the ``callback_url`` header: my_app.webhooks).
    """
    celery_app = current_app.extensions["celery"]
    task = celery_app.tasks[task_name]
    task_id = uuid()
    entry = lifecycle.new_entry(
        celery_app, task_name, task_id, args, inputs,
        owner=owner, queue=lifecycle.queue_of(celery_app, task_name, ""), retry_of=retry_of,
        callback_url=callback_url,
    )  # fmt: skip
    if max_input_bytes is not None:
        stored = len(entry["inputs"].encode()) + len(entry.get("args", "").encode())
        if stored > max_input_bytes:
            raise InputsTooLarge(stored, max_input_bytes)
    ledger = ledger_of()
    ledger.memory.check_room(current_app.config["STORAGE_HEADROOM_PERCENT"])
    client = ledger.client
    if idempotency_key:
        fingerprint = idempotency.request_fingerprint(task_name, [args or [], inputs])
        earlier_id = idempotency.claim(
            client, owner, idempotency_key, task_id, fingerprint,
            current_app.config["IDEMPOTENCY_TTL"],
        )  # fmt: skip
        if earlier_id is not None:
            return replay(earlier_id)
    headers = {lifecycle.OWNER_HEADER: owner}
    if retry_of:
        headers[lifecycle.RETRY_OF_HEADER] = retry_of
    if callback_url:
        headers[lifecycle.CALLBACK_HEADER] = callback_url
    try:
        if run_at is not None:
            run_at = schedules.due_second(run_at)
            lifecycle.held(current_app, entry, run_at, args=args or (), kwargs=inputs)
            held = {**entry, "run_at": run_at.isoformat(), "held_until": run_at.isoformat()}
            return Submission(decode_record(held, None))
        task.apply_async(
            args=args or (),
            kwargs=inputs,
            task_id=task_id,
            headers=headers,
            # What workers log; Celery's default saferepr costs more than the publish.
            argsrepr=repr(tuple(args or ())),
            kwargsrepr=repr(inputs)[:KWARGSREPR_MAX],
        )
    except BaseException as error:
        if unconfirmed(error):
            # The broker may have taken the message and not answered: keep the key, so
            # a retry of the request finds the task if it runs, and say so.
            raise PublishUnconfirmed(task_id) from error
        if idempotency_key:
            release_key(owner, idempotency_key)
        raise
    return Submission(decode_record(entry, None))


def release_key(owner: str, idempotency_key: str) -> None:
    """Give back the Idempotency-Key of a submission whose publish failed."""
    try:
        idempotency.release(ledger_of().client, owner, idempotency_key)
    except Exception:  # Redis is down too: the key expires on its own
        logger.warning("Could not release Idempotency-Key %s", idempotency_key, exc_info=True)


def replay(earlier_id: str) -> Submission:
    """The task an Idempotency-Key created before."""
    earlier = status.read_task(earlier_id)
    if earlier is None:
        # Claimed by a request still publishing, or the key outlived its task
        # (IDEMPOTENCY_TTL > RESULT_EXPIRES).
        raise idempotency.IdempotencyConflict(
            "The task this Idempotency-Key created is not available (still being queued, "
            "or expired); retry shortly, or send a new key for a new job."
        )
    return Submission(earlier, created=False)
