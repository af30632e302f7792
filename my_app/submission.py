"""Queueing tasks: the ledger entry first, then Celery's own publish.

Every task a process queues through a Task (``.delay()``, ``apply_async``, a canvas,
beat, Flower) passes ``recorded_publish`` (called by ``FlaskTask.apply_async``). Tasks
sent by name (``send_task``, ``celery call``) are recorded by ``record_sent_by_name``,
Celery's ``before_task_publish`` signal. A message that arrives with no entry at all
(another service published it) is recorded by the worker that takes it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import Celery, Task, uuid
from celery.signals import before_task_publish
from flask import Flask, current_app, g, has_request_context
from redis.exceptions import TimeoutError as RedisTimeoutError

from .store import idempotency, ledger, task_records
from .store.keys import ALL_SUBMITTED_CHANNEL, owner_channel, task_key

KWARGSREPR_MAX = 1024

#: The id of the task ``recorded_publish`` is publishing in this context: the signal
#: handler leaves it alone.
_publishing: ContextVar[str | None] = ContextVar("publishing", default=None)


@dataclass(frozen=True)
class Submission:
    """The task a submission queued; ``created`` is False when a key replayed an earlier one."""

    task: dict[str, Any]
    created: bool = True


@cache
def routed_queue(celery_app: Celery, task_name: str) -> str:
    """The queue ``task_routes`` (or the default queue) sends a task to."""
    return celery_app.amqp.router.route({}, task_name)["queue"].name


def queue_name(celery_app: Celery, task_name: str, options: dict[str, Any]) -> str:
    """The queue a publish with ``options`` goes to."""
    queue = options.get("queue")
    if queue is None:
        return routed_queue(celery_app, task_name)
    return queue if isinstance(queue, str) else queue.name


def named_inputs(task: Task | None, args: Any, kwargs: Any) -> tuple[dict[str, Any], list[Any]]:
    """A call's arguments by parameter name where the task's signature allows, so a
    ``.delay("Ada", 3)`` shows (and retries) as ``{"name": "Ada", "seconds": 3}``."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if not args or task is None:
        return kwargs, args
    try:
        bound = inspect.signature(task.run).bind(*args, **kwargs)
    except TypeError:
        return kwargs, args
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(bound.signature.parameters[name].kind not in plain for name in bound.arguments):
        return kwargs, args
    return dict(bound.arguments), []


def default_owner(flask_app: Flask, celery_app: Celery) -> str:
    """The owner of a task queued without one being named: the caller's, when a request
    queues it (``/run-task`` calls ``.delay()``); its parent's, when a worker's task
    queues it (a chain's next step); else ``DEFAULT_OWNER`` (a shell, beat, Flower)."""
    caller = g.get("caller") if has_request_context() else None
    if caller is not None:
        return caller.owner
    parent = celery_app.current_worker_task
    if parent is not None and parent.request.id:
        owner = flask_app.extensions["redis"].hget(task_key(parent.request.id), "owner")
        if owner:
            return owner
    return flask_app.config["DEFAULT_OWNER"]


def entry_for(
    celery_app: Celery,
    task_name: str,
    task_id: str,
    args: Any,
    kwargs: Any,
    *,
    owner: str,
    queue: str,
    retry_of: str | None = None,
) -> dict[str, str]:
    """The ledger entry of a task, whoever queues it (the API, a shell, a canvas,
    ``celery call``, another service). Its kind is the task's ``kind`` option, else its
    Celery name (a task this app does not know, or one without a kind)."""
    task = celery_app.tasks.get(task_name)
    inputs, leftover_args = named_inputs(task, args, kwargs)
    return ledger.new_entry(
        task_id,
        kind=getattr(task, "kind", None) or task_name,
        task_name=task_name,
        owner=owner,
        queue=queue,
        inputs=inputs,
        args=leftover_args,
        retry_of=retry_of,
    )


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


@contextmanager
def recorded_publish(
    task: Task,
    args: Any,
    kwargs: Any,
    task_id: str | None,
    options: dict[str, Any],
    entry: dict[str, str] | None = None,
) -> Iterator[str]:
    """Write the task's ledger entry, let the caller publish, and announce the task.

    Yields the task id to publish under. If the publish raises, the entry is removed:
    no entry claims a task that was never queued. A retry of a running task
    (``retries`` set) republishes an id the ledger already has, and is left alone.
    """
    if options.get("retries"):
        yield task_id or uuid()
        return
    flask_app = task.flask_app
    client = flask_app.extensions["redis"]
    task_id = task_id or uuid()
    entry = entry or entry_for(
        task.app, task.name, task_id, args, kwargs,
        owner=default_owner(flask_app, task.app),
        queue=queue_name(task.app, task.name, options),
    )  # fmt: skip
    ledger.record_submission(client, entry, flask_app.config["RESULT_EXPIRES"])
    publishing = _publishing.set(task_id)
    try:
        yield task_id
    except BaseException as error:
        if unconfirmed(error):
            # The broker may have taken the message and not answered: keep the entry, so
            # the task is visible if it runs, and say so.
            raise PublishUnconfirmed(task_id) from error
        ledger.forget_submission(client, entry)
        raise
    finally:
        _publishing.reset(publishing)
    announce(task.app, entry)
    flask_app.logger.info("Queued task %s (%s)", task_id, task.name, extra={"task_id": task_id})


def announce(celery_app: Celery, entry: dict[str, str]) -> None:
    """Tell the owner's live feed and the admins' about a new task, on the result
    backend's Redis, where the feeds follow its results (one round trip)."""
    pipe = celery_app.backend.client.pipeline(transaction=False)
    pipe.publish(owner_channel(entry["owner"]), entry["id"])
    pipe.publish(ALL_SUBMITTED_CHANNEL, entry["id"])
    pipe.execute()


@before_task_publish.connect
def record_sent_by_name(
    sender: str, headers: dict[str, Any], body: Any, routing_key: str, **_: Any
) -> None:
    """Record a task published without ``apply_async`` (``send_task``, ``celery call``).

    Celery logs and ignores an exception raised here, so such a task may reach the
    queue unrecorded; its worker then records it.
    """
    from celery import current_app as celery_app

    task_id = headers.get("id")
    flask_app = getattr(celery_app.Task, "flask_app", None)
    if not task_id or task_id == _publishing.get() or headers.get("retries") or not flask_app:
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) else ((), {})
    entry = entry_for(
        celery_app, sender, task_id, args, kwargs,
        owner=flask_app.config["DEFAULT_OWNER"], queue=routing_key,
    )  # fmt: skip
    ledger.record_submission(
        flask_app.extensions["redis"], entry, flask_app.config["RESULT_EXPIRES"]
    )
    announce(celery_app, entry)


def submit_job(
    task_name: str,
    inputs: dict[str, Any],
    *,
    owner: str,
    args: list[Any] | None = None,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
    max_input_bytes: int | None = None,
) -> Submission:
    """Queue the task ``task_name`` with ``inputs`` (its keyword arguments) for ``owner``.

    An ``idempotency_key`` seen before with the same task and inputs returns the earlier
    task instead; a key that is claimed but whose publish fails is released. Inputs that
    the ledger would store in more than ``max_input_bytes`` raise ``InputsTooLarge``
    before anything is written.
    """
    config = current_app.config
    celery_app = current_app.extensions["celery"]
    client = current_app.extensions["redis"]
    task = celery_app.tasks[task_name]
    task_id = uuid()
    entry = entry_for(
        celery_app, task_name, task_id, args, inputs,
        owner=owner, queue=routed_queue(celery_app, task_name), retry_of=retry_of,
    )  # fmt: skip
    if max_input_bytes is not None:
        stored = len(entry["inputs"].encode()) + len(entry.get("args", "").encode())
        if stored > max_input_bytes:
            raise InputsTooLarge(stored, max_input_bytes)
    if idempotency_key:
        fingerprint = idempotency.request_fingerprint(task_name, [args or [], inputs])
        earlier_id = idempotency.claim(
            client, owner, idempotency_key, task_id, fingerprint, config["IDEMPOTENCY_TTL"]
        )
        if earlier_id is not None:
            return replay(earlier_id)
    try:
        task.apply_async(
            args=args or (),
            kwargs=inputs,
            task_id=task_id,
            ledger_entry=entry,
            # What workers log; Celery's default saferepr costs more than the publish.
            argsrepr=repr(tuple(args or ())),
            kwargsrepr=repr(inputs)[:KWARGSREPR_MAX],
        )
    except PublishUnconfirmed:
        raise  # the key keeps pointing at the task, which may run
    except BaseException:
        if idempotency_key:
            idempotency.release(client, owner, idempotency_key)
        raise
    return Submission(task_records.describe(ledger.decode_entry(entry), None))


def replay(earlier_id: str) -> Submission:
    """The task an Idempotency-Key created before."""
    earlier = task_records.load_task(
        current_app.extensions["redis"], current_app.extensions["celery"].backend, earlier_id
    )
    if earlier is None:
        # Claimed by a request still publishing, or the key outlived its task
        # (IDEMPOTENCY_TTL > RESULT_EXPIRES).
        raise idempotency.IdempotencyConflict(
            "The task this Idempotency-Key created is not available (still being queued, "
            "or expired); retry shortly, or send a new key for a new job."
        )
    return Submission(earlier, created=False)
