"""Idempotency keys: the same key and request within IDEMPOTENCY_TTL return the same task.

A key is claimed (SET NX) before anything is queued, so two concurrent requests with one
key queue one task; a claim whose publish failed is released again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis
from kombu.utils import json as kombu_json

from .keys import idempotency_key


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different request."""


def request_fingerprint(task_name: str, inputs: Any) -> str:
    """What an Idempotency-Key must be sent with again to replay its task."""
    canonical = kombu_json.dumps([task_name, inputs], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    client: redis.Redis, owner: str, key: str, task_id: str, fingerprint: str, ttl: int
) -> str | None:
    """Claim ``key`` for ``task_id``; None if claimed now, else the task that holds it.

    Raises IdempotencyConflict when the key holds a task of another request.
    """
    name = idempotency_key(owner, key)
    if client.set(name, f"{task_id} {fingerprint}", nx=True, ex=ttl):
        return None
    held = client.get(name)
    if held is None:  # expired in between: claim it again
        return claim(client, owner, key, task_id, fingerprint, ttl)
    earlier_id, _, earlier_fingerprint = held.partition(" ")
    if earlier_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request; "
            "send a new key for a new job."
        )
    return earlier_id


def release(client: redis.Redis, owner: str, key: str) -> None:
    """Give a key back whose task was never queued."""
    client.delete(idempotency_key(owner, key))
