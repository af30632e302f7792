"""A task's life, in one place: which Celery hook observes each transition, and what it
writes to the ledger (``my_app.store.ledger``). No other module writes the ledger.

=====================  ===============================  ========================================
transition             observed by                      written, in one round trip
=====================  ===============================  ========================================
queued, by any         ``after_task_publish`` signal    entry; owner, all, active and waiting
producer                                                indexes (and its workflow's, for a
                                                        canvas step: Celery's ``root_id``);
                                                        counter; announcement (EVALSHA); a
                                                        schedule's run, under its schedule
held (a one-off job)   the API's submission with        its redbeat entry, due then; then the
                       ``run_at`` or ``countdown``      entry, held, in the owner's and all
                       (``held``)                       indexes only (EVALSHA)
released               ``after_task_publish`` of beat's out of hold, into the active and
                       publish at its time              waiting sets (in "queued"); its redbeat
                                                        entry deleted (pipeline)
retry scheduled        ``after_task_publish``, a        ``retry_at``; retried counter (pipeline)
                       message with ``retries`` > 0
received               ``task_received`` signal, in     worker, received_at; out of the waiting
                       the worker's main process        set (EVALSHA); or a whole entry for a
                                                        message that came with none
started                ``job_run``, in the task body    started_at, worker, attempts (EVALSHA);
                                                        a cancelled task stops here
progress               ``JobRun.report``, in the body   Celery's result (``update_state``),
                                                        after one read of the cancel flag
artifact saved         ``JobRun.save_artifact``, in     the file, whole, in the artifact store;
                       the body                         then its name and its folder's deletion
                                                        deadline (MULTI)
cancel requested       the API's DELETE; Celery's own   cancel flag; out of the active sets
                       revoke (its stored REVOKED)      (MULTI, or inside "finished"); a held
                                                        job's redbeat entry deleted, and the
                                                        job filed REVOKED at once
finished: SUCCESS,     the result backend's             final state, filed once; final indexes,
FAILURE, REVOKED       ``store_result``                 counters, run time, last progress
                                                        (EVALSHA); then Celery's result
purged                 the API's POST .../purge, a      entry and index entries deleted (MULTI),
                       finished task                    Celery's result forgotten, files deleted
worker alive / gone    ``LeaseRenewal`` consumer        its heartbeat, each third of the
                       bootstep (my_app.worker.leases)  visibility timeout (EVALSHA); removed
                                                        on a clean stop (HDEL)
=====================  ===============================  ========================================

Each transition above except "artifact saved" and "purged" also adds an entry to the
task's timeline (``TimelineEvent``: its time, worker and attempt), inside the same script
or transaction; so do a retry (the backend's ``store_result`` of RETRY, with the error)
and the first progress report past 25, 50 and 75 % (one EVALSHA each).

Why these hooks, and no others:

- ``after_task_publish`` sees every successful publish of every in-process producer
  (``.delay``, ``apply_async``, canvas, beat, Flower, ``send_task``, ``celery call``) with
  its id, routing key, arguments and custom headers, so one handler records them all, and
  a publish that fails leaves nothing to undo. It runs before ``apply_async`` returns, so
  a 202 is answered after the entry exists. Celery logs and swallows a handler's
  exception, and a producer may die between the two: either way the message carries what
  the entry needs (its owner in the ``owner`` header), and the worker that takes it writes
  the entry (``task_received``). Whichever writes first wins; the other writes nothing.
  ``before_task_publish`` writes nothing: it stamps the owner on a message whose producer
  named none (a request's caller, a canvas step's parent's owner, else DEFAULT_OWNER).
- ``task_received`` runs in the worker's main process as each message arrives, before any
  pool process, once per delivery.
- Starting must be able to stop a cancelled task before its body runs, which no signal
  can (their exceptions are swallowed), so the body's ``job_run`` asks.
- Every end passes through the result backend's ``store_result``: a return, an exception,
  a hard time limit (stored by the worker's main process), Celery's revoke (stored by every
  worker that hears it). Filing there, before Celery stores the result, means a client
  that sees a final state finds the task in that state's list; and refusing a second,
  different final state there keeps a terminal state final (``records.TRANSITIONS``).
"""

from __future__ import annotations

import hashlib
import inspect
import time
from datetime import datetime
from typing import IO, Any

from celery import Celery, Task
from celery.backends.redis import SentinelBackend
from celery.exceptions import TaskRevokedError
from celery.signals import after_task_publish, before_task_publish, task_received
from flask import Flask, g, has_request_context
from redis.exceptions import OutOfMemoryError

from . import schedules
from .records import (
    PROGRESS_MILESTONES,
    STORED_FINAL_STATES,
    TaskRecord,
    TaskState,
    TimelineEvent,
    describe_exception,
    encode_inputs,
    error_line,
    may_follow,
    progress_report,
)
from .schedules import SCHEDULE_HEADER
from .store import artifacts
from .store.artifacts import ArtifactStore
from .store.ledger import Ledger, StopReason, ledger_of, utc_now
from .store.results import SubmitOnlyRedisBackend
from .worker.outages import announce_wait

#: The custom message headers a producer may set (``apply_async(headers=...)``): whose
#: task it is, which task it runs again, and where to send its end (my_app.webhooks).
OWNER_HEADER = "owner"
RETRY_OF_HEADER = "retry_of"
CALLBACK_HEADER = "callback_url"


def flask_app_of(celery_app: Celery) -> Flask | None:
    """The Flask app a Celery app is bound to (None for a Celery app that is not ours)."""
    return getattr(celery_app.Task, "flask_app", None)


# Queued (and retry scheduled).


def new_entry(
    celery_app: Celery,
    task_name: str,
    task_id: str,
    args: Any,
    kwargs: Any,
    *,
    owner: str,
    queue: str,
    retry_of: str | None = None,
    workflow: str | None = None,
    schedule: str | None = None,
    callback_url: str | None = None,
) -> dict[str, str]:
    """The ledger entry of a task, whoever queues it. Its kind is the task's ``kind``
    option, else its Celery name (a task this app does not know, or one without a kind);
    its inputs are named by parameter where the task's signature allows; ``workflow`` is
    the canvas it is a step of (Celery's ``root_id``)."""
    task = celery_app.tasks.get(task_name)
    named, leftover = named_inputs(task, args, kwargs)
    entry = {
        "id": task_id,
        "kind": getattr(task, "kind", None) or task_name,
        "task": task_name,
        "owner": owner,
        "queue": queue,
        "inputs": encode_inputs(named),
        "submitted_at": utc_now(),
    }
    if leftover:
        entry["args"] = encode_inputs(leftover)
    if retry_of:
        entry["retry_of"] = retry_of
    if workflow:
        entry["workflow"] = workflow
    if schedule:
        entry["schedule"] = schedule
    if callback_url:
        entry["callback_url"] = callback_url
    return entry


def text_or_none(value: Any) -> str | None:
    """A header's value when it is text (a message from elsewhere may carry anything)."""
    return value if isinstance(value, str) and value else None


def is_recorded(task: Task | None) -> bool:
    """Whether the ledger records a task: every job, and any task it does not know; not
    the service's own plumbing (a task with ``recorded=False``: webhook deliveries)."""
    return getattr(task, "recorded", True) is not False


def workflow_of(task_id: str, root_id: Any, has_later_steps: bool) -> str | None:
    """The workflow a message's task is a step of: Celery's ``root_id`` (the canvas's
    first task, or the id POST /api/workflows gave it), when the task is not alone in
    its canvas; None for a task of its own."""
    if not isinstance(root_id, str) or not root_id:
        return None
    return root_id if root_id != task_id or has_later_steps else None


def named_inputs(task: Task | None, args: Any, kwargs: Any) -> tuple[dict[str, Any], list[Any]]:
    """A call's arguments by parameter name where the task's signature allows, so a
    ``.delay("Ada", 3)`` shows (and retries) as ``{"name": "Ada", "seconds": 3}``."""
    args = list(args) if isinstance(args, (list, tuple)) else []
    kwargs = dict(kwargs) if isinstance(kwargs, dict) else {}
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
    """The owner of a task queued without one named: the caller's, when a request queues
    it (``/run-task`` calls ``.delay()``); its parent's, when a worker's task queues it (a
    chain's next step); else ``DEFAULT_OWNER`` (a shell, beat, Flower)."""
    caller = g.get("caller") if has_request_context() else None
    if caller is not None:
        return caller.owner
    parent = celery_app.current_worker_task
    if parent is not None and parent.request.id:
        owner = getattr(parent.request, OWNER_HEADER, None) or ledger_of(flask_app).owner_of(
            parent.request.id
        )
        if owner:
            return owner
    return flask_app.config["DEFAULT_OWNER"]


@before_task_publish.connect
def owner_stamped(headers: dict[str, Any], **_: Any) -> None:
    """Put the task's owner on its message (the ``owner`` header), unless its producer
    named one: whichever side records the task, producer or worker, reads it there."""
    from celery import current_app as celery_app

    flask_app = flask_app_of(celery_app)
    if flask_app is not None and not headers.get(OWNER_HEADER) and not headers.get("retries"):
        headers[OWNER_HEADER] = default_owner(flask_app, celery_app)


@after_task_publish.connect
def queued(
    sender: str, headers: dict[str, Any], body: Any, routing_key: str = "", **_: Any
) -> None:
    """Record a task once it is published, whoever publishes it (see the module's table)."""
    from celery import current_app as celery_app

    flask_app = flask_app_of(celery_app)
    task_id = headers.get("id")
    if flask_app is None or not task_id or not is_recorded(celery_app.tasks.get(sender)):
        return
    ledger = ledger_of(flask_app)
    if headers.get("retries"):
        kind = getattr(celery_app.tasks.get(sender), "kind", None) or sender
        ledger.record_retry(task_id, kind, headers.get("eta") or utc_now())
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) else ((), {})
    embed = body[2] if isinstance(body, (list, tuple)) and len(body) > 2 else None
    steps = later_steps(embed, task_id, headers.get("group"))
    workflow = workflow_of(task_id, headers.get("root_id"), carries_canvas(embed))
    schedule = headers.get(SCHEDULE_HEADER)
    entry = new_entry(
        celery_app, sender, task_id, args, kwargs,
        owner=headers.get(OWNER_HEADER) or flask_app.config["DEFAULT_OWNER"],
        queue=queue_of(celery_app, sender, routing_key),
        retry_of=headers.get(RETRY_OF_HEADER), workflow=workflow,
        schedule=schedule if isinstance(schedule, str) else None,
        callback_url=text_or_none(headers.get(CALLBACK_HEADER)),
    )  # fmt: skip
    submitted = datetime.fromisoformat(entry["submitted_at"]).timestamp()
    if ledger.record_queued(entry, submitted) == RELEASED:
        schedules.release_one_off(celery_app, task_id)  # beat queued it: done with it
    if entry.get("retry_of"):  # whoever recorded it first (a worker may have)
        ledger.record_retried(entry["retry_of"], task_id)
    if isinstance(schedule, str):
        schedules.schedule_ran(celery_app, schedule, task_id, submitted)
    flask_app.logger.info("Queued task %s (%s)", task_id, sender, extra={"task_id": task_id})
    for position, (step, waits_for) in enumerate(steps, start=1):
        step_entry = new_entry(
            celery_app, step["task"], step["options"]["task_id"],
            step.get("args") or (), step.get("kwargs") or {},
            owner=entry["owner"],
            queue=queue_of(celery_app, step["task"], step["options"].get("queue") or ""),
            retry_of=(step["options"].get("headers") or {}).get(RETRY_OF_HEADER),
            workflow=workflow,
        )  # fmt: skip
        step_entry["waiting_for"] = waits_for
        # A millisecond apart, so the workflow lists its steps in the chain's order.
        ledger.record_queued(step_entry, submitted + position / 1000)


def later_steps(embed: Any, task_id: str, group_id: str | None) -> list[tuple[dict[str, Any], str]]:
    """The canvas steps a message carries that run after it (a chain's next steps, a
    chord's callback), each with the id of what it waits for: from the moment a canvas
    is queued, every id it returned can be read and cancelled. A step that is itself a
    group or chord (no task of its own) ends the walk."""
    if not isinstance(embed, dict):
        return []
    steps: list[tuple[dict[str, Any], str]] = []
    previous = task_id
    for step in reversed(embed.get("chain") or []):  # Celery keeps the chain reversed
        if not is_task_signature(step):
            break
        steps.append((step, previous))
        previous = step["options"]["task_id"]
    chord = embed.get("chord")
    if is_task_signature(chord):
        steps.append((chord, group_id or task_id))
    return steps


def carries_canvas(embed: Any) -> bool:
    """Whether a message carries canvas steps to run after it (a chain's rest, a chord's
    callback), whatever they are: its task is then a step of a workflow."""
    return isinstance(embed, dict) and bool(embed.get("chain") or embed.get("chord"))


def is_task_signature(step: Any) -> bool:
    """Whether a serialized signature is one task with its id fixed. A chord, group or
    chain has a ``subtask_type``: its id (``celery.chord``'s) is no task that will run."""
    return (
        isinstance(step, dict)
        and not step.get("subtask_type")
        and isinstance(step.get("task"), str)
        and isinstance(step.get("options"), dict)
        and isinstance(step["options"].get("task_id"), str)
    )


def queue_of(celery_app: Celery, task_name: str, routing_key: str) -> str:
    """The queue a message went to: the one its routing key names (each of the service's
    queues is bound by its own name), else the one ``task_routes`` names."""
    if routing_key in celery_app.amqp.queues:
        return routing_key
    return celery_app.amqp.router.route({}, task_name)["queue"].name


#: What ``Ledger.record_queued`` answers when a held one-off was queued.
RELEASED = 2


def held(
    flask_app: Flask, entry: dict[str, str], run_at: datetime, *, args: Any, kwargs: Any
) -> None:
    """Hold a one-off job until ``run_at``: beat's entry first (whatever happens next, the
    job runs and is recorded when it is queued), then the ledger's, due at ``run_at`` and
    kept that much longer; the entry is taken back if the ledger cannot be written."""
    celery_app = flask_app.extensions["celery"]
    headers = {OWNER_HEADER: entry["owner"]}
    if entry.get("retry_of"):
        headers[RETRY_OF_HEADER] = entry["retry_of"]
    if entry.get("callback_url"):
        headers[CALLBACK_HEADER] = entry["callback_url"]
    schedules.hold_one_off(celery_app, entry["task"], entry["id"], run_at,
                           args=list(args or ()), kwargs=kwargs, headers=headers)  # fmt: skip
    held_for = max(0.0, run_at.timestamp() - time.time())
    try:
        ledger_of(flask_app).record_queued(
            {**entry, "held_until": run_at.isoformat(), "run_at": run_at.isoformat()},
            run_at.timestamp(),
            held_for,
        )
    except BaseException:
        schedules.release_one_off(celery_app, entry["id"])
        raise


# Received.


@task_received.connect
def received(request: Any, **_: Any) -> None:
    """Note the worker that took the task, recording the task if its producer did not."""
    task = request.task
    flask_app = getattr(task, "flask_app", None)
    if flask_app is None or not is_recorded(task):  # not ours, or the service's own
        return
    ledger = ledger_of(flask_app)
    queue = (request.delivery_info or {}).get("routing_key") or ""
    attempt = attempt_of(request)
    if ledger.record_received(request.id, worker=request.hostname, queue=queue, attempt=attempt):
        return
    headers = request.request_dict
    entry = new_entry(
        task.app, request.name, request.id, request.args, request.kwargs,
        owner=headers.get(OWNER_HEADER) or flask_app.config["DEFAULT_OWNER"],
        queue=queue, retry_of=headers.get(RETRY_OF_HEADER),
        workflow=workflow_of(request.id, getattr(request, "root_id", None), False),
        schedule=text_or_none(headers.get(SCHEDULE_HEADER)),
        callback_url=text_or_none(headers.get(CALLBACK_HEADER)),
    )  # fmt: skip
    entry.update(worker=request.hostname, received_at=utc_now())
    submitted = datetime.fromisoformat(entry["submitted_at"]).timestamp()
    ledger.record_queued(entry, submitted)  # unless its producer recorded it meanwhile
    # Either way it was received now (and its timeline says so after "queued").
    ledger.record_received(request.id, request.hostname, queue, attempt)
    if entry.get("retry_of"):
        ledger.record_retried(entry["retry_of"], request.id)


# Started, progress, outcome, artifacts: called from the task body (my_app.worker.job_run).

#: The last progress each running task reported in this process, kept beside its final
#: state when it ends (the result replaces it in Celery). The body and the storing of its
#: result run in the same process, so no round trip carries it in between.
last_progress: dict[str, dict[str, Any]] = {}


def attempt_of(request: Any) -> int:
    """The attempt a Celery request is, from 1 (its retries so far, plus one)."""
    retries = getattr(request, "retries", None)  # a task's request (Context)
    if retries is None:  # a worker's Request: the message's own fields
        retries = (getattr(request, "request_dict", None) or {}).get("retries")
    return (retries if isinstance(retries, int) else 0) + 1


def started(ledger: Ledger, task: Task) -> bool:
    """Record an attempt's start; True when the task was cancelled and must not run."""
    request = task.request
    return ledger.record_started(request.id, request.hostname or "", attempt_of(request))


def stop_reason(ledger: Ledger, task_id: str) -> StopReason | None:
    """Why the running task must stop, if it must: it was cancelled (by the API or
    Celery's revoke), or its end was already filed elsewhere, so nothing it reports
    may follow."""
    return ledger.stop_reason(task_id)


def progressed(ledger: Ledger, task: Task, progress: dict[str, Any]) -> None:
    """Publish a running task's progress (Celery's PROGRESS state, which reaches every
    event stream at once), and keep it for the task's end; the first report past each
    of ``PROGRESS_MILESTONES`` goes to its timeline too."""
    task.update_state(state=TaskState.PROGRESS.value, meta=progress)
    before = last_progress.get(task.request.id)
    last_progress[task.request.id] = progress
    passed = [
        milestone
        for milestone in PROGRESS_MILESTONES
        if percent_of(before) < milestone <= percent_of(progress)
    ]
    if passed:
        detail = f"{percent_of(progress):.0f} % ({progress.get('current')}/{progress.get('total')})"
        ledger.record_note(task.request.id, TimelineEvent.PROGRESS, detail)


def percent_of(progress: dict[str, Any] | None) -> float:
    """How far a progress report says the task is, 0 to 100."""
    try:
        return 100 * float(progress["current"]) / float(progress["total"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return 0.0


def artifact_saved(
    ledger: Ledger, store: ArtifactStore, task_id: str, name: str, source: str | IO[bytes]
) -> None:
    """Store a file the job produced (a local path, or an open file), whole, then list
    it in the task's entry with its folder's deletion due when the entry expires."""
    folder = artifacts.task_folder(task_id)
    relative = f"{folder}/{name}"
    if isinstance(source, str):
        store.put_file(relative, source)
    else:
        store.put_stream(relative, source)
    ledger.record_artifact(task_id, name, artifacts.content_type(name), folder)


def artifacts_discarded(
    ledger: Ledger, store: ArtifactStore, task_id: str, names: list[str]
) -> None:
    """Drop what a failed or cancelled run produced, listed or not: no half-finished set
    of files is served, and nothing is left behind."""
    ledger.forget_artifacts(task_id, names)
    folder = artifacts.task_folder(task_id)
    for name in names:
        store.delete(f"{folder}/{name}")
    store.remove_empty_folder(folder)


def upload_stored(ledger: Ledger, store: ArtifactStore, stream: IO[bytes], kind: str) -> str:
    """Keep an upload a job will read (before its task is queued), named by its content's
    SHA-256, so a file sent twice is stored once and an Idempotency-Key recognises it;
    it is deleted when a task queued now would expire. Returns its upload id."""
    stream.seek(0)
    upload_id = hashlib.file_digest(stream, "sha256").hexdigest()
    relative = artifacts.upload_path(upload_id)
    ledger.record_upload(upload_id, relative, kind)  # first: a sweep must not take it now
    if store.stat(relative) is None:
        store.put_stream(relative, stream)
    return upload_id


def outcome_recorded(ledger: Ledger, task_id: str, outcome: dict[str, Any]) -> None:
    """Remember that a side effect happened (an email was accepted), so a redelivery
    does not repeat it."""
    ledger.record_outcome(task_id, outcome)


# Cancel requested.


def cancel(flask_app: Flask, task_id: str, owner: str) -> None:
    """Ask a task to stop: a queued one never starts, a running one stops at its next
    step; then Celery's own revoke, so a worker already holding it drops it unstarted."""
    caller = g.get("caller") if has_request_context() else None
    by = caller.owner if caller is not None else "the service"
    celery_app = flask_app.extensions["celery"]
    ledger_of(flask_app).request_cancel(task_id, owner, by)
    if schedules.release_one_off(celery_app, task_id):  # held: it will never be queued
        celery_app.backend.mark_as_revoked(task_id, "cancelled before its time")
        return
    celery_app.control.revoke(task_id)


# Purged.


def purged(flask_app: Flask, task: TaskRecord) -> None:
    """Forget a finished task at once: its entry, result and indexes, and its files."""
    folder = artifacts.task_folder(task.id)
    ledger_of(flask_app).purge(task.id, task.owner, task.state.value, folder)
    artifacts.artifact_store(flask_app).delete(folder)


# Finished.


def finished(
    ledger: Ledger,
    task_id: str,
    state: str,
    progress: dict[str, Any] | None,
    result: Any = None,
    attempt: int | None = None,
) -> tuple[bool, str | None]:
    """File a task's end (its error, if it failed or was revoked, in its timeline).
    Returns False when another final state was filed first (it stands), and the address
    to tell of the end when this call filed it."""
    error = describe_exception(result) if isinstance(result, BaseException) else None
    before, callback = ledger.record_finished(task_id, state, progress, error, attempt)
    return before is None or before == state, callback


def webhook_queued(celery_app: Celery, task_id: str) -> None:
    """Queue the delivery of a task's end to its ``callback_url`` (``webhook_task``)."""
    celery_app.send_task(WEBHOOK_TASK, args=(task_id,))


#: The task that delivers webhooks (my_app.tasks.webhook_task), named here so the
#: lifecycle does not import the tasks.
WEBHOOK_TASK = "my_app.tasks.webhook_task"


def webhook_attempted(ledger: Ledger, task_id: str, attempt: dict[str, Any], state: str) -> None:
    """Record a delivery attempt of a task's webhook, and where its delivery stands."""
    ledger.record_webhook_attempt(task_id, attempt, state)


class LedgerRedisBackend(SubmitOnlyRedisBackend):
    """Celery's Redis result backend, with the lifecycle's "finished" transition: every
    final state is filed in the ledger first, and a state that may not follow the one
    filed (a SUCCESS after a REVOKED, a PROGRESS after either) is not stored."""

    def store_result(self, task_id: str, result: Any, state: str, *args: Any, **kwargs: Any) -> Any:
        """File the transition, then store the result as Celery does, unless refused; a
        revoked chain step revokes the steps after it (Celery carries a failure down a
        chain itself, not a revoke), saying why."""
        request = kwargs.get("request") or (args[1] if len(args) > 1 else None)
        attempt = attempt_of(request) if request is not None else None
        if state == TaskState.REVOKED:
            for step, _ in later_steps({"chain": getattr(request, "chain", None)}, task_id, None):
                step_id = step["options"]["task_id"]
                reason = f"an earlier step of its chain, {task_id}, was cancelled"
                self.store_result(step_id, TaskRevokedError(reason), state)
        flask_app = flask_app_of(self.app)
        callback = None
        if flask_app is not None and state in TaskState.__members__:
            ledger = ledger_of(flask_app)
            if TaskState(state) in STORED_FINAL_STATES:
                progress = last_progress.pop(task_id, None)
                if progress is None and state != TaskState.SUCCESS:
                    progress = self.stored_progress(task_id)
                filed, callback = finished(ledger, task_id, state, progress, result, attempt)
                if not filed:
                    return result
            elif state != TaskState.PROGRESS and not may_follow(
                filed_state(ledger, task_id), TaskState(state)
            ):
                return result
            if state == TaskState.RETRY:
                error = describe_exception(result) if isinstance(result, BaseException) else None
                detail = error_line(error) if error else None
                ledger.record_note(task_id, TimelineEvent.RETRY, detail, attempt)
        stored = super().store_result(task_id, result, state, *args, **kwargs)
        if callback:  # after the result: the delivery reads the task as it ended
            webhook_queued(self.app, task_id)
        return stored

    def stored_progress(self, task_id: str) -> dict[str, Any] | None:
        """The progress Celery holds for a running task. A task can end in another
        process than the one that ran its body, which kept its progress: Celery's revoke
        marks it REVOKED in the worker's main process, and a pool process killed at its
        hard time limit is failed there. One read, on ends other than SUCCESS only."""
        meta = self.get_task_meta(task_id, cache=False)
        if meta.get("status") != TaskState.PROGRESS:
            return None
        return progress_report(meta.get("result"))

    def on_backend_retryable_error(self, exc: Exception) -> None:
        """Celery's hook before it retries storing a result: say the worker waits."""
        flask_app = flask_app_of(self.app)
        if flask_app is not None:
            announce_wait(flask_app.config["REDIS_OUTAGE_GRACE_SECONDS"], exc)

    def exception_safe_to_retry(self, exc: Exception) -> bool:
        """Retry (``result_backend_always_retry``) a lost connection, as Celery does, and
        a full Redis too: results expiring and jobs finishing make room."""
        return super().exception_safe_to_retry(exc) or isinstance(exc, OutOfMemoryError)


def filed_state(ledger: Ledger, task_id: str) -> TaskState | None:
    """The final state filed for a task, if any (a value this version knows)."""
    final = ledger.final_state(task_id)
    return TaskState(final) if final in TaskState.__members__ else None


class LedgerSentinelBackend(LedgerRedisBackend, SentinelBackend):
    """``LedgerRedisBackend`` on Celery's Sentinel backend: the results' Redis is the
    primary the Sentinels name (REDIS_URL ``sentinel://...``), found again after a
    failover. Its pool is Sentinel's own, which does not block (my_app.store.redis_connections)."""
