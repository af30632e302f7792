"""Submitting a job: the idempotency claim, the publish, then the ledger entry."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app

from . import ledger, task_state
from .extensions import redis_client
from .rate_limit import count_submission
from .tasks import TASKS_BY_KIND


@dataclass(frozen=True)
class Submission:
    """The task a submission queued; ``created`` is False when a key replayed an earlier one."""

    task: dict[str, Any]
    created: bool = True


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different request."""


def current_owner() -> str:
    """Whose tasks these are.

    Every caller shares one namespace until an authentication layer names callers;
    the ledger already files each task under its owner.
    """
    return "public"


def submit_job(
    kind: str,
    inputs: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
    client_address: str | None = None,
) -> Submission:
    """Queue a job of ``kind`` with ``inputs`` (its task's keyword arguments).

    ``client_address`` is counted against ``SUBMIT_RATE_LIMIT``. The ledger entry is
    written only after the broker took the message, so every entry has a message in
    the queue or a result.
    """
    client = redis_client.client
    config = current_app.config
    owner = current_owner()
    if client_address:
        count_submission(client, client_address, config["SUBMIT_RATE_LIMIT"])
    task_id = str(uuid.uuid4())
    claim = None
    if idempotency_key:
        claim = ledger.idempotency_key(owner, idempotency_key)
        fingerprint = hashlib.sha256(
            json.dumps([kind, inputs], sort_keys=True).encode()
        ).hexdigest()
        if not client.set(claim, f"{task_id} {fingerprint}", nx=True, ex=config["IDEMPOTENCY_TTL"]):
            earlier_id, _, earlier_fingerprint = (client.get(claim) or "").partition(" ")
            if earlier_fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "This Idempotency-Key was already used with a different request; "
                    "send a new key for a new job."
                )
            earlier = task_state.load_task(client, earlier_id)
            if earlier is None:
                raise IdempotencyConflict(
                    "A request with this Idempotency-Key is still being processed."
                )
            return Submission(earlier, created=False)
    try:
        # The app's own Celery, not the process-wide default: tests build several apps.
        task = current_app.extensions["celery"].tasks[TASKS_BY_KIND[kind].name]
        limits = config["TASK_TIME_LIMITS"].get(kind, {})
        task.apply_async(
            kwargs=inputs,
            task_id=task_id,
            soft_time_limit=limits.get("soft"),
            time_limit=limits.get("hard"),
        )
    except Exception:
        if claim:
            client.delete(claim)
        raise
    entry = ledger.record_submission(
        client,
        task_id,
        kind=kind,
        owner=owner,
        inputs=inputs,
        expires=config["RESULT_EXPIRES"],
        retry_of=retry_of,
    )
    return Submission(task_state.describe(entry, None))
