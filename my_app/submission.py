"""Submitting a job: one atomic Redis script counts, claims, enqueues and records it.

The script checks the client's rate limit, claims the Idempotency-Key, pushes Celery's
message onto its queue and writes the ledger entry, all or nothing, in one round trip:
every accepted task has both a message and a ledger entry, and nothing is half done.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from celery import Celery
from flask import current_app
from redis.commands.core import Script

from . import ledger, task_state
from .celery_message import route_queue, task_message
from .extensions import redis_client
from .rate_limit import WINDOW_SECONDS, RateLimited
from .redis_io import run_script
from .tasks import TASKS_BY_KIND

# KEYS: ledger hash, owner's sorted set, owner's channel, queue list, rate counter,
#       idempotency key.
# ARGV: task id, message, now, expires, rate limit (0: none), rate window,
#       idempotency claim ("" : none), its TTL, then the ledger entry's fields and values.
SUBMIT_SCRIPT = """
local limit = tonumber(ARGV[5])
if limit > 0 then
  local count = redis.call('INCR', KEYS[5])
  if count == 1 then redis.call('EXPIRE', KEYS[5], ARGV[6]) end
  if count > limit then return {'rate_limited', tostring(redis.call('TTL', KEYS[5]))} end
end
if ARGV[7] ~= '' then
  local earlier = redis.call('GET', KEYS[6])
  if earlier then return {'replay', earlier} end
  redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8])
end
redis.call('LPUSH', KEYS[4], ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return {'queued'}
"""


@cache
def submit_script(client: redis.Redis) -> Script:
    """The submission script, registered once per client (its SHA is computed once)."""
    return client.register_script(SUBMIT_SCRIPT)


@cache
def task_name_of(kind: str) -> str:
    """The Celery task name of a kind of job."""
    return TASKS_BY_KIND[kind].name


def request_fingerprint(kind: str, inputs: dict[str, Any]) -> str:
    """What an Idempotency-Key must be sent with again to replay its task."""
    return hashlib.sha256(json.dumps([kind, inputs], sort_keys=True).encode()).hexdigest()


@cache
def queue_of(celery_app: Celery, task_name: str) -> str:
    """The queue a task is routed to (routing is configuration: it does not change)."""
    return route_queue(celery_app, task_name)


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

    ``client_address`` is counted against ``SUBMIT_RATE_LIMIT``; an ``idempotency_key``
    seen before with the same kind and inputs returns the earlier task instead.
    """
    config = current_app.config
    celery_app = current_app.extensions["celery"]
    client = redis_client.client
    owner = current_owner()
    task_id = str(uuid.uuid4())
    task_name = task_name_of(kind)
    queue = queue_of(celery_app, task_name)
    limits = config["TASK_TIME_LIMITS"].get(kind, {})
    message = task_message(
        celery_app,
        task_name,
        task_id,
        inputs,
        queue=queue,
        soft_time_limit=limits.get("soft"),
        time_limit=limits.get("hard"),
    )
    now = time.time()
    entry = {
        "id": task_id,
        "kind": kind,
        "owner": owner,
        "inputs": json.dumps(inputs),
        "submitted_at": datetime.fromtimestamp(now, UTC).isoformat(),
    }
    if retry_of:
        entry["retry_of"] = retry_of
    fingerprint = request_fingerprint(kind, inputs) if idempotency_key else ""
    rate_limit = config["SUBMIT_RATE_LIMIT"] if client_address else 0
    window = int(now // WINDOW_SECONDS)
    reply = run_script(
        client,
        submit_script(client),
        keys=[
            ledger.task_key(task_id),
            ledger.owner_key(owner),
            ledger.owner_channel(owner),
            queue,
            ledger.rate_key(client_address or "-", window),
            ledger.idempotency_key(owner, idempotency_key or ""),
        ],
        args=[
            task_id,
            message,
            now,
            config["RESULT_EXPIRES"],
            rate_limit,
            WINDOW_SECONDS,
            f"{task_id} {fingerprint}" if idempotency_key else "",
            config["IDEMPOTENCY_TTL"],
            *(item for field in entry.items() for item in field),
        ],
    )
    outcome = reply[0]
    if outcome == "rate_limited":
        raise RateLimited(rate_limit, retry_after=max(1, int(reply[1])))
    if outcome == "replay":
        return replay(client, reply[1], fingerprint)
    return Submission(task_state.describe(ledger.decode_entry(entry), None))


def replay(client: Any, claim: str, fingerprint: str) -> Submission:
    """The task an Idempotency-Key created before, if the request is the same."""
    earlier_id, _, earlier_fingerprint = claim.partition(" ")
    if earlier_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request; "
            "send a new key for a new job."
        )
    earlier = task_state.load_task(client, earlier_id)
    if earlier is None:  # the key outlived its task (IDEMPOTENCY_TTL > RESULT_EXPIRES)
        raise IdempotencyConflict(
            "The task this Idempotency-Key created has expired; send a new key for a new job."
        )
    return Submission(earlier, created=False)
