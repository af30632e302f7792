"""The task ledger: what was queued, by whom, with which inputs, kept in Redis.

Celery answers PENDING both for a queued task and for an id it has never seen; the
ledger tells them apart, keeps the inputs a retry needs, and lists an owner's tasks.
Producers write an entry before they publish (``my_app.submission``); workers add one
for a message that arrived without it (``my_app.worker.signals``). Every key expires
with the task's result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from kombu.utils import json as kombu_json
from redis.commands.core import Script

from . import job_metrics
from .keys import (
    ALL_ACTIVE,
    ALL_TASKS,
    WORKERS,
    owner_active_key,
    owner_key,
    state_key,
    task_key,
    waiting_key,
    worker_key,
)

#: Ledger fields named ``artifact:<name>`` list a task's artifacts (value: media type).
ARTIFACT_FIELD_PREFIX = "artifact:"


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


def encode_inputs(inputs: Mapping[str, Any] | list[Any]) -> str:
    """Inputs as the ledger stores them: Celery's JSON (kombu's types), compact and
    unescaped, so non-ASCII text costs its UTF-8 bytes rather than up to 12 a character."""
    value = dict(inputs) if isinstance(inputs, Mapping) else inputs
    return kombu_json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def new_entry(
    task_id: str,
    *,
    kind: str,
    task_name: str,
    owner: str,
    queue: str,
    inputs: Mapping[str, Any],
    args: list[Any] | tuple[Any, ...] = (),
    retry_of: str | None = None,
) -> dict[str, str]:
    """A ledger entry as stored: inputs in Celery's own JSON, so dates, UUIDs and
    decimals come back as they went in."""
    entry = {
        "id": task_id,
        "kind": kind,
        "task": task_name,
        "owner": owner,
        "queue": queue,
        "inputs": encode_inputs(inputs),
        "submitted_at": utc_now(),
    }
    if args:
        entry["args"] = encode_inputs(list(args))
    if retry_of:
        entry["retry_of"] = retry_of
    return entry


def record_submission(client: redis.Redis, entry: dict[str, str], expires: int) -> None:
    """Write a new entry and file it under its owner and among all tasks, all at once
    (MULTI/EXEC)."""
    submitted = datetime.fromisoformat(entry["submitted_at"]).timestamp()
    owner = entry["owner"]
    pipe = client.pipeline(transaction=True)
    pipe.hset(task_key(entry["id"]), mapping=entry)
    pipe.expire(task_key(entry["id"]), expires)
    for index in (owner_key(owner), ALL_TASKS):
        pipe.zadd(index, {entry["id"]: submitted})
        pipe.zremrangebyscore(index, "-inf", submitted - expires)
        pipe.expire(index, expires)
    pipe.sadd(owner_active_key(owner), entry["id"])
    pipe.expire(owner_active_key(owner), expires)
    pipe.zadd(ALL_ACTIVE, {entry["id"]: submitted})
    pipe.zremrangebyscore(ALL_ACTIVE, "-inf", submitted - expires)
    pipe.expire(ALL_ACTIVE, expires)
    job_metrics.count_queued(pipe, entry["kind"], entry["queue"], entry["id"], submitted, expires)
    pipe.execute()


def forget_submission(client: redis.Redis, entry: dict[str, str]) -> None:
    """Remove an entry whose message was never queued (its publish failed)."""
    task_id, owner = entry["id"], entry["owner"]
    pipe = client.pipeline(transaction=True)
    job_metrics.uncount_queued(pipe, entry["kind"], entry["queue"], task_id)
    pipe.delete(task_key(task_id))
    pipe.zrem(owner_key(owner), task_id)
    pipe.zrem(ALL_TASKS, task_id)
    pipe.srem(owner_active_key(owner), task_id)
    pipe.zrem(ALL_ACTIVE, task_id)
    pipe.execute()


# KEYS: the entry. ARGV: expires, worker, received_at. Returns 0 when there is no entry.
RECORD_RECEIVED = """
if redis.call('HEXISTS', KEYS[1], 'kind') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[2], 'received_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Atomically: a task cancelled while queued must never look started. Each start (a retry,
# a redelivery) is an attempt: started_at and worker are the current attempt's.
# KEYS: the entry. ARGV: started_at, expires, worker.
MARK_STARTED = """
if redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then return 1 end
redis.call('HSET', KEYS[1], 'started_at', ARGV[1], 'worker', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""


@cache
def scripts(client: redis.Redis) -> dict[str, Script]:
    """The ledger's Lua scripts, registered once per client."""
    return {
        "received": client.register_script(RECORD_RECEIVED),
        "started": client.register_script(MARK_STARTED),
    }


def record_received(
    client: redis.Redis, task_id: str, *, worker: str, expires: int, queue: str = ""
) -> bool:
    """Note that ``worker`` took the task's message from ``queue``; False if the task has
    no entry."""
    pipe = client.pipeline(transaction=False)
    scripts(client)["received"](
        keys=[task_key(task_id)], args=[expires, worker, utc_now()], client=pipe
    )
    job_metrics.count_taken(pipe, queue, task_id)
    return bool(pipe.execute()[0])


def record_foreign(
    client: redis.Redis, entry: dict[str, str], *, worker: str, expires: int
) -> None:
    """Write the entry of a task whose producer wrote none, as taken by ``worker``."""
    record_submission(client, {**entry, "worker": worker, "received_at": utc_now()}, expires)


def mark_started(client: redis.Redis, task_id: str, *, worker: str, expires: int) -> bool:
    """Record that ``worker`` started an attempt at the task; True (and no start) if it
    was cancelled."""
    script = scripts(client)["started"]
    return bool(script(keys=[task_key(task_id)], args=[utc_now(), expires, worker]))


def read_entry(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """One task's entry with its JSON fields decoded, or None when unknown or expired."""
    return decode_entry(client.hgetall(task_key(task_id)))


def read_entries(client: redis.Redis, task_ids: list[str]) -> list[dict[str, Any] | None]:
    """The entries of ``task_ids`` (None where unknown), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for task_id in task_ids:
        pipe.hgetall(task_key(task_id))
    return [decode_entry(raw) for raw in pipe.execute()]


def decode_entry(raw: dict[str, str]) -> dict[str, Any] | None:
    """Turn a raw ledger hash into an entry; None for a hash without a submission."""
    if "kind" not in raw:
        # A worker may still touch the hash of a task whose entry expired while it
        # waited: that task is not the ledger's.
        return None
    entry: dict[str, Any] = dict(raw)
    entry["inputs"] = kombu_json.loads(raw["inputs"])
    entry["args"] = kombu_json.loads(raw["args"]) if "args" in raw else []
    entry["progress"] = json.loads(raw["progress"]) if "progress" in raw else None
    entry["cancel_requested"] = "cancel_requested" in raw
    entry["artifacts"] = sorted(
        field.removeprefix(ARTIFACT_FIELD_PREFIX)
        for field in raw
        if field.startswith(ARTIFACT_FIELD_PREFIX)
    )
    return entry


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


def all_task_ids(client: redis.Redis, limit: int | None = None) -> list[str]:
    """Every owner's task ids, newest first (the ``limit`` newest, if given)."""
    return client.zrevrange(ALL_TASKS, 0, -1 if limit is None else limit - 1)


def count_active(client: redis.Redis, owner: str) -> int:
    """How many tasks the owner's active set holds."""
    return client.scard(owner_active_key(owner))


def active_task_ids(client: redis.Redis, owner: str) -> set[str]:
    """The owner's tasks that were queued or running when last looked at."""
    return client.smembers(owner_active_key(owner))


def drop_active(client: redis.Redis, owner: str, task_ids: set[str]) -> None:
    """Drop finished or cancelled tasks from the owner's active set (and everyone's)."""
    if task_ids:
        pipe = client.pipeline(transaction=False)
        pipe.srem(owner_active_key(owner), *task_ids)
        pipe.zrem(ALL_ACTIVE, *task_ids)
        pipe.execute()


def unfinished_task_ids(client: redis.Redis, owner: str | None, queues: list[str]) -> set[str]:
    """Every task of the owner (of everyone, for None) that may not have finished: those
    still active, and those waiting in ``queues`` (a task cancelled while it waited
    leaves the active set, yet shows QUEUED until a worker drops it). As many as the
    quotas and the queues hold, however many tasks are retained; the waiting ones may be
    other owners', for the caller to leave out."""
    pipe = client.pipeline(transaction=False)
    if owner is None:
        pipe.zrange(ALL_ACTIVE, 0, -1)
    else:
        pipe.smembers(owner_active_key(owner))
    for queue in queues:
        pipe.zrange(waiting_key(queue), 0, -1)
    return {task_id for members in pipe.execute() for task_id in members}


def record_heartbeat(
    client: redis.Redis,
    hostname: str,
    queues: list[str],
    expires: int,
    running: list[str] | None = None,
) -> None:
    """Note that ``hostname`` is alive, consumes ``queues`` and runs the tasks
    ``running``, for ``expires`` seconds."""
    beat = json.dumps({"queues": queues, "running": running or [], "at": utc_now()})
    pipe = client.pipeline(transaction=False)
    pipe.set(worker_key(hostname), beat, ex=expires)
    pipe.sadd(WORKERS, hostname)
    pipe.execute()


def live_workers(client: redis.Redis) -> dict[str, list[str]]:
    """Each worker with a current heartbeat, and the queues it consumes."""
    return {name: beat["queues"] for name, beat in worker_heartbeats(client).items()}


def worker_heartbeats(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Each worker's last heartbeat (queues, running task ids, time); workers whose
    heartbeat expired leave the set."""
    hostnames = sorted(client.smembers(WORKERS))
    if not hostnames:
        return {}
    beats = client.mget([worker_key(hostname) for hostname in hostnames])
    gone = [hostname for hostname, beat in zip(hostnames, beats, strict=True) if beat is None]
    if gone:
        client.srem(WORKERS, *gone)
    return {
        hostname: json.loads(beat)
        for hostname, beat in zip(hostnames, beats, strict=True)
        if beat is not None
    }


#: The final states a worker records in the per-state index (LOST is seen, not recorded).
INDEXED_STATES = ("SUCCESS", "FAILURE", "REVOKED")


def record_finished(client: redis.Redis, task_id: str, state: str, expires: int) -> None:
    """File a task that ended in ``state`` under its owner's and everyone's index of that
    state, and take it out of its owner's active set. Two round trips, once a task."""
    pipe = client.pipeline(transaction=False)
    pipe.hmget(task_key(task_id), "owner", "kind", "queue", "started_at")
    pipe.zscore(ALL_TASKS, task_id)
    (owner, kind, queue, started_at), submitted = pipe.execute()
    if owner is None or submitted is None:  # expired, or not the ledger's
        return
    runtime = (
        (datetime.now(UTC) - datetime.fromisoformat(started_at)).total_seconds()
        if started_at
        else None
    )
    pipe = client.pipeline(transaction=True)
    job_metrics.count_finished(pipe, kind, state, runtime)
    job_metrics.count_taken(pipe, queue, task_id)
    for index in (state_key(owner, state), state_key(None, state)):
        pipe.zadd(index, {task_id: submitted})
        pipe.zremrangebyscore(index, "-inf", submitted - expires)
        pipe.expire(index, expires)
    pipe.srem(owner_active_key(owner), task_id)
    pipe.zrem(ALL_ACTIVE, task_id)
    pipe.execute()


def finished_task_ids(
    client: redis.Redis, owner: str | None, state: str, first: int, last: int
) -> tuple[list[str], int]:
    """One page (``first`` to ``last``, newest first) of the owner's tasks that ended in
    ``state`` (everyone's, for None), and how many there are."""
    return index_page(client, state_key(owner, state), first, last)


def task_id_page(
    client: redis.Redis, owner: str | None, first: int, last: int
) -> tuple[list[str], int]:
    """One page (``first`` to ``last``, newest first) of the owner's tasks (everyone's,
    for None), and how many there are."""
    return index_page(client, ALL_TASKS if owner is None else owner_key(owner), first, last)


def index_page(client: redis.Redis, index: str, first: int, last: int) -> tuple[list[str], int]:
    """One page of a sorted set of task ids, newest first, and its size: one round trip
    whose cost is the page's, however many tasks are retained."""
    pipe = client.pipeline(transaction=False)
    pipe.zrevrange(index, first, last - 1)
    pipe.zcard(index)
    page, count = pipe.execute()
    return page, count
