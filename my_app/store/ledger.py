"""The task ledger: what was queued, by whom, with which inputs, and how it went.

Celery answers PENDING both for a queued task and for an id it has never seen; the ledger
tells them apart, keeps the inputs a retry needs, files each task under its owner and,
once it ends, under its final state. ``Ledger`` owns the Redis client, the expiry and the
Lua scripts (registered once: each call is one EVALSHA). Only ``my_app.lifecycle``
writes through it; readers go through ``my_app.status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis
from celery.backends.base import Backend
from flask import Flask, current_app
from kombu.utils import json as kombu_json

from ..records import ARTIFACT_FIELD_PREFIX, WEBHOOK_ATTEMPT_PREFIX, TimelineEvent, error_line
from . import artifacts, job_metrics
from .capacity import MemoryGauge
from .heartbeats import Heartbeats
from .keys import (
    ALL_ACTIVE,
    ALL_SUBMITTED_CHANNEL,
    ALL_TASKS,
    ARTIFACTS_EXPIRING,
    JOB_COUNTERS,
    owner_active_key,
    owner_channel,
    owner_key,
    runtime_key,
    state_key,
    task_key,
    upload_key,
    waiting_key,
    workflow_key,
    workflow_steps_key,
)

#: The most tasks a workflow's reader takes (its steps, and their re-runs).
MAX_WORKFLOW_TASKS = 500

#: The most transitions a task's timeline keeps (the latest).
TIMELINE_LENGTH = 50

# Shared by the scripts that write a transition: add it to the entry's timeline (fields
# "timeline:<n>", my_app.records); when the note names no attempt (a worker's notes take
# Celery's), the entry's last (the next, for "queued"), and when it names no worker, the
# entry's. Only the last TIMELINE_LENGTH are kept.
NOTE_FUNCTION = """
local function note(key, text, limit)
  local event = cjson.decode(text)
  local attempts, worker = unpack(redis.call('HMGET', key, 'attempts', 'worker'))
  if event.attempt == nil then
    event.attempt = tonumber(attempts) or 0
    if event.event == 'queued' then event.attempt = event.attempt + 1 end
  end
  if event.worker == nil and worker then event.worker = worker end
  local n = redis.call('HINCRBY', key, 'timeline_count', 1)
  redis.call('HSET', key, 'timeline:' .. n, cjson.encode(event))
  if n > tonumber(limit) then redis.call('HDEL', key, 'timeline:' .. (n - tonumber(limit))) end
end
"""

# KEYS: the entry. ARGV: the note (JSON), the timeline's length, expires.
NOTE = (
    NOTE_FUNCTION
    + """
note(KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
"""
)

# A new entry, filed under its owner, among all tasks and the active ones, and (unless a
# worker took it already, or it is a canvas step waiting for another: a "waiting_for"
# field) among its queue's waiting ones; counted and announced. Nothing more when the
# entry exists: the worker that took the message recorded it first, from the message
# itself (which cannot tell a chain's first task from a task of its own, so the
# producer still files it under its workflow); or it was recorded as a waiting canvas
# step, and its own publish now only clears "waiting_for" and files it as waiting in its
# queue. A held one-off (a "held_until" field) is filed under its owner, all tasks and
# its queue's waiting ones (not the active ones: no quota), scored by when it is due, and
# kept that much longer; when beat queues it, it joins the active set, its waiting score
# becomes the time it was queued, and the script returns 2. KEYS: the entry, the
# owner's index, all tasks, all active, the owner's active set, the queue's waiting set,
# the counters, the owner's and everyone's channel, and (for a step of a canvas: a
# "workflow" field) its workflow's steps. ARGV: expires, submitted (epoch),
# id, counter field, announce ("1"), the "queued" note, the timeline's length, field,
# value, ...
QUEUED = (
    NOTE_FUNCTION
    + """
local pending, workflow = false, nil
local held = false
for i = 8, #ARGV, 2 do
  if ARGV[i] == 'waiting_for' then pending = true end
  if ARGV[i] == 'held_until' then held = true end
  if ARGV[i] == 'workflow' then workflow = ARGV[i + 1] end
end
if redis.call('HEXISTS', KEYS[1], 'kind') == 1 then
  if KEYS[10] and workflow then
    redis.call('HSET', KEYS[1], 'workflow', workflow)
    redis.call('ZADD', KEYS[10], 'NX', tonumber(ARGV[2]), ARGV[3])
    redis.call('EXPIRE', KEYS[10], tonumber(ARGV[1]))
  end
  local was_held = redis.call('HEXISTS', KEYS[1], 'held_until') == 1
  if not pending and redis.call('HDEL', KEYS[1], 'waiting_for', 'held_until') > 0 then
    note(KEYS[1], ARGV[6], ARGV[7])
    if redis.call('HEXISTS', KEYS[1], 'received_at') == 0 then
      redis.call('ZADD', KEYS[6], tonumber(ARGV[2]), ARGV[3])
      redis.call('EXPIRE', KEYS[6], tonumber(ARGV[1]))
    end
    if was_held then
      redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
      redis.call('ZADD', KEYS[4], tonumber(ARGV[2]), ARGV[3])
      redis.call('SADD', KEYS[5], ARGV[3])
      redis.call('EXPIRE', KEYS[5], tonumber(ARGV[1]))
      return 2
    end
  end
  return 0
end
local expires, submitted, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
note(KEYS[1], ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[1], expires)
for i = 2, held and 3 or 4 do
  redis.call('ZADD', KEYS[i], submitted, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', submitted - expires)
  redis.call('EXPIRE', KEYS[i], expires)
end
if not held then
  redis.call('SADD', KEYS[5], id)
  redis.call('EXPIRE', KEYS[5], expires)
end
if not pending and redis.call('HEXISTS', KEYS[1], 'received_at') == 0 then
  redis.call('ZADD', KEYS[6], submitted, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', submitted - expires)
  redis.call('EXPIRE', KEYS[6], expires)
end
if KEYS[10] then
  redis.call('ZADD', KEYS[10], 'NX', submitted, id)
  redis.call('EXPIRE', KEYS[10], expires)
end
redis.call('HINCRBY', KEYS[7], ARGV[4], 1)
if ARGV[5] == '1' then
  redis.call('PUBLISH', KEYS[8], id)
  redis.call('PUBLISH', KEYS[9], id)
end
return 1
"""
)

# KEYS: the entry, the waiting set of its queue. ARGV: expires, worker, received_at,
# task id, the note, the timeline's length. Returns 0 when there is no entry.
RECEIVED = (
    NOTE_FUNCTION
    + """
redis.call('ZREM', KEYS[2], ARGV[4])
if redis.call('HEXISTS', KEYS[1], 'kind') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[2], 'received_at', ARGV[3])
note(KEYS[1], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
)

# Atomically: a task cancelled while queued must never look started. Each start (a retry,
# a redelivery) is an attempt: started_at and worker are the current attempt's.
# KEYS: the entry. ARGV: started_at, expires, worker, started (epoch seconds), the
# note, the timeline's length.
STARTED = (
    NOTE_FUNCTION
    + """
if redis.call('HEXISTS', KEYS[1], 'kind') == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'cancel_requested') == 1 then return 1 end
redis.call('HSET', KEYS[1], 'started_at', ARGV[1], 'worker', ARGV[3], 'started', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
note(KEYS[1], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""
)

# A task's end, filed once: the first final state wins (a later one is refused), and the
# task moves from its owner's active set to its final state's indexes, counted. REVOKED
# also sets the cancel flag, so a running job stops at its next step whoever revoked it.
# Keys that depend on what the entry holds come as templates from keys.py, with SLOT
# where the owner, queue or kind goes. KEYS: the entry, everyone's index, everyone's
# index of this state, everyone's active tasks, the counters. ARGV: state, finished_at,
# expires, now (epoch), last progress (JSON or ""), the owner's state index, the owner's
# active set, the queue's waiting set, the runtime histogram (templates), the counter
# field (template), SLOT, the histogram's bounds (comma-separated), the "finished"
# note, the timeline's length, the error ({type, message} JSON, or "").
# Returns the state filed before ("" when this call filed it, "?" for an unknown task),
# and the entry's callback_url when this call filed it ("" for none).
FINISHED = (
    NOTE_FUNCTION
    + """
local function fill(template, value)
  local at = string.find(template, ARGV[11], 1, true)
  return string.sub(template, 1, at - 1) .. value .. string.sub(template, at + #ARGV[11])
end
local entry = redis.call(
  'HMGET', KEYS[1], 'id', 'kind', 'owner', 'final', 'started', 'queue', 'callback_url')
local id, kind, owner, final, started, queue, callback = unpack(entry, 1, 7)
if not kind then return {'?', ''} end
if final then return {final, ''} end
local state, expires, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'final', state, 'finished_at', ARGV[2])
if state == 'REVOKED' then redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[2]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[5]) end
if ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[15]) end
note(KEYS[1], ARGV[13], ARGV[14])
local submitted = redis.call('ZSCORE', KEYS[2], id) or now
for _, index in ipairs({fill(ARGV[6], owner), KEYS[3]}) do
  redis.call('ZADD', index, submitted, id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', submitted - expires)
  redis.call('EXPIRE', index, expires)
end
redis.call('SREM', fill(ARGV[7], owner), id)
redis.call('ZREM', KEYS[4], id)
if queue then redis.call('ZREM', fill(ARGV[8], queue), id) end
redis.call('HINCRBY', KEYS[5], fill(ARGV[10], kind), 1)
if started then
  local runtime = math.max(0, now - tonumber(started))
  local histogram = fill(ARGV[9], kind)
  for bound in string.gmatch(ARGV[12], '[^,]+') do
    if bound == 'inf' or runtime <= tonumber(bound) then
      redis.call('HINCRBY', histogram, 'le:' .. bound, 1)
      break
    end
  end
  redis.call('HINCRBYFLOAT', histogram, 'sum', runtime)
  redis.call('HINCRBY', histogram, 'count', 1)
end
return {'', callback or ''}
"""
)


class StopReason(StrEnum):
    """Why a running job must stop at its next step."""

    CANCELLED = "cancelled"  # someone asked (the API, Celery's revoke)
    FINISHED = "finished"  # its end was filed elsewhere: nothing it reports may follow


#: Where a key template (keys.py's own function, given SLOT) takes the owner, queue or kind.
SLOT = "\x00"


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


def timeline_note(
    event: TimelineEvent,
    detail: str | None = None,
    worker: str | None = None,
    attempt: int | None = None,
) -> str:
    """A transition for a task's timeline, as JSON (the scripts fill in the attempt and
    worker where it names none)."""
    note: dict[str, Any] = {"at": utc_now(), "event": event.value}
    if attempt is not None:
        note["attempt"] = attempt
    if detail:
        note["detail"] = detail[:MAX_NOTE_DETAIL]
    if worker:
        note["worker"] = worker
    return json.dumps(note)


#: The longest detail (an error's message) a timeline entry keeps, in characters.
MAX_NOTE_DETAIL = 500


#: The largest position a page may reach in an index: a sorted set holds fewer than 2^32
#: members, and Redis refuses offsets beyond 64 bits (a 500 for a huge ?page=).
MAX_INDEX = 2**32


class Ledger:
    """The ledger of one app: its text and bytes clients of ``REDIS_URL``, how long an
    entry lives, and Celery's result backend (whose Redis carries the live feeds)."""

    def __init__(
        self, client: redis.Redis, binary: redis.Redis, expires: int, results: Backend
    ) -> None:
        self.client = client
        self.binary = binary
        self.expires = expires
        self.results = results
        self.heartbeats = Heartbeats(client)
        self.memory = MemoryGauge(client)
        self._queued = client.register_script(QUEUED)
        self._received = client.register_script(RECEIVED)
        self._started = client.register_script(STARTED)
        self._finished = client.register_script(FINISHED)
        self._note = client.register_script(NOTE)
        self._results_share_database: bool | None = None

    @property
    def results_share_database(self) -> bool:
        """Whether Celery's results live in the ledger's own Redis database (the default):
        then a read joins both in one round trip, and announcements ride the ledger's."""
        if self._results_share_database is None:
            ours = self.client.connection_pool.connection_kwargs
            theirs = self.results.connparams
            self._results_share_database = all(
                ours.get(name) == theirs.get(name)
                for name in ("host", "port", "path", "db", "username", "password")
            )
        return self._results_share_database

    # Writes: called by my_app.lifecycle only.

    def record_queued(self, entry: Mapping[str, str], submitted: float, held_for: float = 0) -> int:
        """Write a new entry; file it under its owner, among all tasks, the active ones
        and its queue's waiting ones; count it and announce it: one EVALSHA. Returns 1;
        0 (and nothing written) when the entry exists already; 2 when the entry was a
        held one-off, now queued. A held entry (``held_until``) is kept ``held_for``
        seconds longer than others."""
        task_id, owner = entry["id"], entry["owner"]
        announce_here = self.results_share_database
        fields = [item for pair in entry.items() for item in pair]
        keys = [
            task_key(task_id), owner_key(owner), ALL_TASKS, ALL_ACTIVE,
            owner_active_key(owner), waiting_key(entry.get("queue", "")), JOB_COUNTERS,
            owner_channel(owner), ALL_SUBMITTED_CHANNEL,
        ]  # fmt: skip
        if entry.get("workflow"):
            keys.append(workflow_steps_key(entry["workflow"]))
        detail = f"on queue {entry.get('queue') or '?'}"
        if entry.get("held_until"):
            detail = f"held until {entry['held_until']}, {detail}"
        note = timeline_note(TimelineEvent.QUEUED, detail)
        recorded = self._queued(
            keys=keys,
            args=[self.expires + int(held_for), submitted, task_id,
                  job_metrics.counter_field("queued", entry["kind"]),
                  "1" if announce_here else "0", note, TIMELINE_LENGTH, *fields],
        )  # fmt: skip
        if recorded and not announce_here:
            pipe = self.results.client.pipeline(transaction=False)
            pipe.publish(owner_channel(owner), task_id)
            pipe.publish(ALL_SUBMITTED_CHANNEL, task_id)
            pipe.execute()
        return int(recorded)

    def record_retried(self, task_id: str, retried_by: str) -> None:
        """Note on a task that ``retried_by`` runs it again."""
        self.client.hset(task_key(task_id), "retried_by", retried_by)

    def record_retry(self, task_id: str, kind: str, retry_at: str) -> None:
        """Note when a retrying task's next attempt is due, and count the retry."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(task_key(task_id), "retry_at", retry_at)
        job_metrics.count_retried(pipe, kind)
        pipe.execute()

    def record_received(self, task_id: str, worker: str, queue: str, attempt: int) -> bool:
        """Note that ``worker`` took the task's message from ``queue`` for ``attempt``;
        False if the task has no entry."""
        note = timeline_note(TimelineEvent.RECEIVED, worker=worker, attempt=attempt)
        args = [self.expires, worker, utc_now(), task_id, note, TIMELINE_LENGTH]
        return bool(self._received(keys=[task_key(task_id), waiting_key(queue)], args=args))

    def record_started(self, task_id: str, worker: str, attempt: int) -> bool:
        """Record that ``worker`` started ``attempt``; True (and no start) if the task was
        cancelled."""
        note = timeline_note(TimelineEvent.STARTED, worker=worker, attempt=attempt)
        args = [utc_now(), self.expires, worker, time.time(), note, TIMELINE_LENGTH]
        return bool(self._started(keys=[task_key(task_id)], args=args))

    def record_finished(
        self,
        task_id: str,
        state: str,
        progress: dict[str, Any] | None = None,
        error: dict[str, str] | None = None,
        attempt: int | None = None,
    ) -> tuple[str | None, str | None]:
        """File the task's end in ``state`` (with its last progress, and its ``error``,
        also in its timeline). Returns the final state filed before (the one that
        stands; None when this call filed it or the ledger does not know the task), and
        the callback address to tell when this call filed it."""
        detail = f"{state}: {error_line(error)}" if error else state
        note = timeline_note(TimelineEvent.FINISHED, detail, attempt=attempt)
        args = [
            state, utc_now(), self.expires, time.time(),
            json.dumps(progress) if progress else "",
            state_key(SLOT, state), owner_active_key(SLOT), waiting_key(SLOT),
            runtime_key(SLOT), job_metrics.counter_field(job_metrics.FINAL_EVENTS[state], SLOT),
            SLOT, ",".join(str(bound) for bound in job_metrics.RUNTIME_BUCKETS),
            note, TIMELINE_LENGTH, json.dumps(error) if error else "",
        ]  # fmt: skip
        keys = [task_key(task_id), ALL_TASKS, state_key(None, state), ALL_ACTIVE, JOB_COUNTERS]
        before, callback = self._finished(keys=keys, args=args)
        return (before if before and before != "?" else None), (callback or None)

    def request_cancel(self, task_id: str, owner: str, by: str) -> None:
        """Ask the task to stop at its next step (or never start); it no longer counts
        against its owner's jobs at once. ``by`` says who asked, for its timeline."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(task_key(task_id), "cancel_requested", utc_now())
        note = timeline_note(TimelineEvent.CANCEL_REQUESTED, f"by {by}")
        # The expiry too: a canvas step not yet recorded.
        args = [note, TIMELINE_LENGTH, self.expires]
        self._note(keys=[task_key(task_id)], args=args, client=pipe)
        pipe.srem(owner_active_key(owner), task_id)
        pipe.zrem(ALL_ACTIVE, task_id)
        pipe.execute()

    def record_note(
        self,
        task_id: str,
        event: TimelineEvent,
        detail: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Add a transition that changes nothing else (progress, a retry) to the timeline."""
        note = timeline_note(event, detail, attempt=attempt)
        self._note(keys=[task_key(task_id)], args=[note, TIMELINE_LENGTH, self.expires])

    def record_webhook_attempt(self, task_id: str, attempt: dict[str, Any], state: str) -> None:
        """Add a delivery attempt of the task's webhook (JSON field ``webhook_attempt:<n>``)
        and its delivery's state (pending, delivered, failed)."""
        pipe = self.client.pipeline(transaction=True)
        number = f"{int(time.time() * 1000):015d}"
        pipe.hset(task_key(task_id), mapping={
            f"{WEBHOOK_ATTEMPT_PREFIX}{number}": json.dumps(attempt), "webhook_state": state,
        })  # fmt: skip
        pipe.expire(task_key(task_id), self.expires)
        pipe.execute()

    def final_state(self, task_id: str) -> str | None:
        """The final state filed for a task, if any."""
        return self.client.hget(task_key(task_id), "final")

    def stop_reason(self, task_id: str) -> StopReason | None:
        """Why a running task must stop, if it must (one round trip): someone asked to
        cancel it (or it was revoked), or its end was filed by another process (its
        worker's main process, at its hard time limit) while this one still runs."""
        cancel, final = self.client.hmget(task_key(task_id), ["cancel_requested", "final"])
        if cancel:
            return StopReason.CANCELLED
        return StopReason.FINISHED if final else None

    def record_outcome(self, task_id: str, outcome: dict[str, Any]) -> None:
        """Remember that a side effect happened (an email was accepted), with its result."""
        self.client.hset(task_key(task_id), "outcome", json.dumps(outcome))

    def recorded_outcome(self, task_id: str) -> dict[str, Any] | None:
        """The result of a side effect that already happened, so it is not repeated."""
        outcome = self.client.hget(task_key(task_id), "outcome")
        return json.loads(outcome) if outcome else None

    def record_artifact(self, task_id: str, name: str, media_type: str, folder: str) -> None:
        """List a stored artifact in the task's entry, and set its folder's deletion for
        when the entry expires (one round trip)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(task_key(task_id), f"{ARTIFACT_FIELD_PREFIX}{name}", media_type)
        pipe.expire(task_key(task_id), self.expires)
        artifacts.expire_at(pipe, folder, self.expires)
        pipe.execute()

    def forget_artifacts(self, task_id: str, names: list[str]) -> None:
        """Take artifacts out of the task's entry."""
        if names:
            fields = [f"{ARTIFACT_FIELD_PREFIX}{name}" for name in names]
            self.client.hdel(task_key(task_id), *fields)

    def record_upload(self, upload_id: str, relative: str, kind: str) -> None:
        """Note what an upload holds, and set its deletion for when a task that reads it
        would expire."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(upload_key(upload_id), kind, ex=self.expires)
        artifacts.expire_at(pipe, relative, self.expires)
        pipe.execute()

    def upload_kind(self, upload_id: str) -> str | None:
        """What an upload holds ("image", "video"), or None when there is no such upload."""
        return self.client.get(upload_key(upload_id))

    def purge(self, task_id: str, owner: str, state: str, folder: str) -> None:
        """Forget a finished task: its entry, its result, its place in every index; its
        files' deletion is due now."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(task_key(task_id))
        for index in (owner_key(owner), ALL_TASKS, state_key(owner, state), state_key(None, state)):
            pipe.zrem(index, task_id)
        pipe.zadd(ARTIFACTS_EXPIRING, {folder: 0})
        pipe.execute()
        self.results.forget(task_id)

    def record_workflow(self, definition: Mapping[str, Any]) -> None:
        """Keep a workflow's definition (replaced when a retry re-runs its steps)."""
        text = kombu_json.dumps(definition)  # Celery's JSON: dates stay dates
        self.client.set(workflow_key(definition["id"]), text, ex=self.expires)

    def workflow_definition(self, workflow_id: str) -> dict[str, Any] | None:
        """The definition POST /api/workflows kept, or None (a canvas from elsewhere)."""
        text = self.client.get(workflow_key(workflow_id))
        try:
            value = kombu_json.loads(text) if text else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def workflow_task_ids(self, workflow_id: str) -> list[str]:
        """Every task queued as part of the workflow, in the order they were queued."""
        return self.client.zrange(workflow_steps_key(workflow_id), 0, MAX_WORKFLOW_TASKS - 1)

    def drop_active(self, owner: str, task_ids: set[str]) -> None:
        """Drop finished or cancelled tasks from the owner's active set (and everyone's)."""
        if task_ids:
            pipe = self.client.pipeline(transaction=False)
            pipe.srem(owner_active_key(owner), *task_ids)
            pipe.zrem(ALL_ACTIVE, *task_ids)
            pipe.execute()

    # Reads: for my_app.status.

    def read(self, task_ids: list[str]) -> tuple[list[tuple[dict[str, str], Any]], dict]:
        """Each task's raw entry (text) and raw result payload, and the workers'
        heartbeats: one round trip when the results share the ledger's database.

        Results first: a worker writes the ledger (artifacts, last progress) before it
        stores a final state, so an entry read after a final result is complete.
        """
        if self.results_share_database:
            pipe = self.results.client.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.get(self.results.get_key_for_task(task_id))
                pipe.hgetall(task_key(task_id))
            self.heartbeats.read_in(pipe)
            replies = pipe.execute()
            payloads = replies[0:-1:2]
            entries = [_as_text(raw) for raw in replies[1:-1:2]]
            return list(zip(entries, payloads, strict=True)), self.heartbeats.decode(replies[-1])
        payloads = (
            self.results.mget([self.results.get_key_for_task(t) for t in task_ids])
            if task_ids
            else []
        )
        pipe = self.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(task_key(task_id))
        self.heartbeats.read_in(pipe)
        replies = pipe.execute()
        workers = self.heartbeats.decode(replies[-1])
        return list(zip(replies[:-1], payloads, strict=True)), workers

    def read_entry(self, task_id: str) -> dict[str, str]:
        """One task's raw entry (for a result that arrived on its channel)."""
        return self.client.hgetall(task_key(task_id))

    def owner_of(self, task_id: str) -> str | None:
        """The owner of a task, if the ledger knows it."""
        return self.client.hget(task_key(task_id), "owner")

    def owners_of(self, task_ids: list[str]) -> list[str | None]:
        """The owners of several tasks, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hget(task_key(task_id), "owner")
        return pipe.execute() if task_ids else []

    def task_id_page(self, owner: str | None, first: int, last: int) -> tuple[list[str], int]:
        """A page (``first`` to ``last``, newest first) of the owner's tasks (everyone's
        for None), and how many there are."""
        return self._index_page(ALL_TASKS if owner is None else owner_key(owner), first, last)

    def finished_page(
        self, owner: str | None, state: str, first: int, last: int
    ) -> tuple[list[str], int]:
        """A page of the owner's tasks (everyone's for None) that ended in ``state``."""
        return self._index_page(state_key(owner, state), first, last)

    def _index_page(self, index: str, first: int, last: int) -> tuple[list[str], int]:
        if last > MAX_INDEX:  # past any index Redis can hold (its offsets are 64-bit)
            return [], self.client.zcard(index)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrange(index, first, last - 1)
        pipe.zcard(index)
        page, count = pipe.execute()
        return page, count

    def task_ids(self, owner: str | None, limit: int | None = None) -> list[str]:
        """The owner's task ids (everyone's for None), newest first (the ``limit`` newest)."""
        index = ALL_TASKS if owner is None else owner_key(owner)
        return self.client.zrevrange(index, 0, -1 if limit is None else limit - 1)

    def count_active(self, owner: str) -> int:
        """How many tasks the owner's active set holds."""
        return self.client.scard(owner_active_key(owner))

    def active_task_ids(self, owner: str) -> set[str]:
        """The owner's tasks that were queued or running when last looked at."""
        return self.client.smembers(owner_active_key(owner))

    def unfinished_task_ids(self, owner: str | None, queues: list[str]) -> set[str]:
        """Every task of the owner (everyone's, for None) that may not have finished: those
        still active, and those waiting in ``queues`` (a task cancelled while it waited
        leaves the active set, yet shows QUEUED until a worker drops it); the waiting ones
        may be other owners', for the caller to leave out."""
        pipe = self.client.pipeline(transaction=False)
        if owner is None:
            pipe.zrange(ALL_ACTIVE, 0, -1)
        else:
            pipe.smembers(owner_active_key(owner))
        for queue in queues:
            pipe.zrange(waiting_key(queue), 0, -1)
        return {task_id for members in pipe.execute() for task_id in members}


def _as_text(raw: dict[bytes, bytes] | dict[str, str]) -> dict[str, str]:
    """A hash read on a bytes connection, as the ledger's text client reads it."""
    return {
        (k.decode() if isinstance(k, bytes) else k): (
            v.decode(errors="replace") if isinstance(v, bytes) else v
        )
        for k, v in raw.items()
    }


def ledger_of(app: Flask | None = None) -> Ledger:
    """The ledger of ``app`` (in a request or a task: the current app's). A worker's
    signal handlers pass their task's ``flask_app``."""
    return (app or current_app).extensions["ledger"]
