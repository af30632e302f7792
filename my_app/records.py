"""A task as a value: its ``TaskState``, the transitions allowed between states, and the
immutable ``TaskRecord`` that every reader shows, decoded from whatever Redis holds.

The decoder never raises: a task queued by another producer with arguments of the wrong
type, a progress report that is not a pair of numbers, or a result Celery cannot decode
shows as what can be read of it, so one malformed entry never breaks a page of them.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from kombu.utils import json as kombu_json


class TaskState(StrEnum):
    """Every state a task can be in, as the API names them."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    #: Still QUEUED in the ledger, but its message is in no queue and no worker took it
    #: (a purged queue, for instance): seen by the read model, never stored.
    LOST = "LOST"


#: The states a task ends in; once stored, nothing replaces them.
TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST}
)
#: The final states a worker stores (LOST is seen, not stored).
STORED_FINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED})
#: The final states another process than the job's may file (the worker's main process,
#: at a hard time limit or on Celery's revoke): the ledger holds their error.
ENDED_ELSEWHERE_STATES = frozenset({TaskState.FAILURE, TaskState.REVOKED})
#: The states from which a task may be run again as a new task.
RETRYABLE_STATES = frozenset({TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST})
#: The states in which a worker that took a task's message holds it unacknowledged.
HELD_STATES = frozenset({TaskState.QUEUED, TaskState.STARTED, TaskState.PROGRESS, TaskState.RETRY})

_UNFINISHED = {TaskState.QUEUED, TaskState.STARTED, TaskState.PROGRESS, TaskState.RETRY}
#: Which state may follow which. A redelivered or retried task starts again (so STARTED
#: follows every unfinished state); a terminal state is followed by nothing.
TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset(_UNFINISHED | STORED_FINAL_STATES | {TaskState.LOST}),
    TaskState.STARTED: frozenset(_UNFINISHED | STORED_FINAL_STATES),
    TaskState.PROGRESS: frozenset(_UNFINISHED | STORED_FINAL_STATES),
    TaskState.RETRY: frozenset(_UNFINISHED | STORED_FINAL_STATES),
    TaskState.SUCCESS: frozenset(),
    TaskState.FAILURE: frozenset(),
    TaskState.REVOKED: frozenset(),
    TaskState.LOST: frozenset({TaskState.STARTED, TaskState.PROGRESS} | STORED_FINAL_STATES),
}


def may_follow(current: TaskState | None, new: TaskState) -> bool:
    """Whether a task in ``current`` (None: unknown) may move to ``new``; storing the
    same final state twice is harmless, so it is allowed."""
    return current is None or current == new or new in TRANSITIONS[current]


#: Ledger fields named ``artifact:<name>`` list a task's artifacts (value: media type).
ARTIFACT_FIELD_PREFIX = "artifact:"

#: Ledger fields named ``timeline:<number>`` hold a task's timeline, one transition each
#: (JSON), numbered from 1 in the order written (my_app.store.ledger keeps the last
#: TIMELINE_LENGTH).
TIMELINE_FIELD_PREFIX = "timeline:"


#: Ledger fields named ``webhook_attempt:<ms>`` hold a task's webhook delivery attempts.
WEBHOOK_ATTEMPT_PREFIX = "webhook_attempt:"
#: The most delivery attempts a record shows (the latest).
SHOWN_WEBHOOK_ATTEMPTS = 20


class TimelineEvent(StrEnum):
    """The transitions a task's timeline shows."""

    QUEUED = "queued"
    RECEIVED = "received"
    STARTED = "started"
    PROGRESS = "progress"
    RETRY = "retry"
    CANCEL_REQUESTED = "cancel_requested"
    FINISHED = "finished"


#: The progress a timeline notes: the first report at or past each of these percents.
PROGRESS_MILESTONES = (25, 50, 75)


@dataclass(frozen=True)
class TaskRecord:
    """One task as every reader shows it: the ledger's entry joined with Celery's result."""

    id: str
    kind: str
    owner: str
    state: TaskState
    submitted_at: str
    queue: str | None = None
    progress: dict[str, Any] | None = None
    result: Any = None
    error: dict[str, str] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    artifacts: tuple[str, ...] = ()
    retry_of: str | None = None
    #: The task that ran it again (a retry, one at a time or in bulk).
    retried_by: str | None = None
    #: Someone asked to cancel it (the API, or Celery's revoke).
    cancel_requested: bool = False
    #: A failure after its retries ran out (its timeline has a retry), not yet run again:
    #: a dead letter, for a re-drive.
    dead_letter: bool = False
    #: The canvas step (a chain's previous step, a chord's group) this one waits for: it
    #: is queued when that one ends.
    waiting_for: str | None = None
    #: The workflow (a canvas: Celery's ``root_id``) the task is a step of.
    workflow: str | None = None
    #: The schedule that queued it (my_app.schedules).
    schedule: str | None = None
    #: When a one-off job was asked to run; ``held`` while beat has not queued it yet.
    run_at: str | None = None
    held: bool = False
    worker: str | None = None
    received_at: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    retry_at: str | None = None
    warning: str | None = None
    #: Every transition, oldest first: ``{"at", "event", "attempt", "worker", "detail"}``.
    timeline: tuple[dict[str, Any], ...] = ()
    #: Where its end is sent, and how that went: ``{"url", "state", "attempts"}``.
    webhook: dict[str, Any] | None = None
    #: What a retry runs again: the Celery task name, its keyword and positional inputs.
    task_name: str = ""
    call_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    call_args: list[Any] = field(default_factory=list, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the task is in a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def waiting(self) -> bool:
        """Whether the task is queued and no worker has taken it yet."""
        return (
            self.state == TaskState.QUEUED
            and not self.received_at
            and bool(self.queue)
            and not self.waiting_for
            and not self.held
        )

    def as_lost(self) -> TaskRecord:
        """This record, as LOST: its message is gone from its queue."""
        message = (
            f"Its message is no longer in queue {self.queue!r} and no worker took it "
            "(the queue was purged, or the message lost). Retry to run it again."
        )
        return replace(
            self, state=TaskState.LOST, error={"type": "MessageLost", "message": message}
        )

    def with_warning(self, warning: str) -> TaskRecord:
        """This record, with a warning for the reader."""
        return replace(self, warning=warning)

    def as_dict(self) -> dict[str, Any]:
        """The public fields, as the API's schemas dump them (``warning`` only when
        there is one)."""
        shown = {name: getattr(self, name) for name in PUBLIC_FIELDS}
        for optional in (
            "warning",
            "waiting_for",
            "workflow",
            "schedule",
            "run_at",
            "webhook",
            "retried_by",
        ):
            if shown[optional] is None:
                del shown[optional]
        return shown


PUBLIC_FIELDS = (
    "id", "kind", "owner", "queue", "state", "progress", "result", "error", "inputs",
    "artifacts", "retry_of", "retried_by", "dead_letter", "waiting_for", "workflow",
    "schedule", "run_at", "worker", "submitted_at", "received_at", "attempts",
    "started_at", "finished_at", "retry_at", "warning", "timeline", "webhook",
)  # fmt: skip


def decode_record(raw: Mapping[str, str], meta: Mapping[str, Any] | None) -> TaskRecord | None:
    """The record of a ledger hash (as text) and Celery's result meta (None while it has
    none); None for a hash without a submission (a task the ledger does not know).

    The one decoder: each field falls back to "unknown" on its own, so nothing stored
    can make it raise.
    """
    if not raw.get("kind") or not raw.get("id"):
        return None
    meta = meta if isinstance(meta, Mapping) else None
    state = record_state(raw, meta)
    payload = meta.get("result") if meta else None
    kwargs = _json_dict(raw.get("inputs"))
    args = _json_list(raw.get("args"))
    progress = progress_report(raw.get("progress"))
    result = error = None
    if state == TaskState.SUCCESS:
        result = payload
    elif state == TaskState.PROGRESS and progress_report(payload) is not None:
        progress = progress_report(payload)
    elif state in (TaskState.FAILURE, TaskState.RETRY, TaskState.REVOKED):
        if meta and meta.get("status") == state and payload is not None:
            error = describe_exception(payload)
        elif state in ENDED_ELSEWHERE_STATES:  # the ledger's end stood over a late PROGRESS
            filed = _json_dict(raw.get("error"))
            if {"type", "message"} <= filed.keys():
                error = {"type": str(filed["type"]), "message": str(filed["message"])}
    shown_inputs = kwargs if not args else {"*args": args, **kwargs}
    timeline = decode_timeline(raw)
    finished_at = raw.get("finished_at") or (meta.get("date_done") if meta else None)
    return TaskRecord(
        id=raw["id"],
        kind=raw["kind"],
        owner=raw.get("owner") or "",
        state=state,
        submitted_at=raw.get("submitted_at") or "",
        queue=raw.get("queue") or None,
        progress=with_percent(progress, state),
        result=json_compatible(result),
        error=error,
        inputs=json_compatible(shown_inputs),
        artifacts=tuple(
            sorted(
                name.removeprefix(ARTIFACT_FIELD_PREFIX)
                for name in raw
                if name.startswith(ARTIFACT_FIELD_PREFIX)
            )
        ),
        retry_of=raw.get("retry_of") or None,
        waiting_for=(raw.get("waiting_for") or None) if state == TaskState.QUEUED else None,
        workflow=raw.get("workflow") or None,
        schedule=raw.get("schedule") or None,
        run_at=raw.get("run_at") or None,
        held=bool(raw.get("held_until")) and state == TaskState.QUEUED,
        worker=raw.get("worker") or None,
        received_at=raw.get("received_at") or None,
        attempts=_int(raw.get("attempts")),
        started_at=raw.get("started_at") or None,
        finished_at=str(finished_at) if finished_at and state in TERMINAL_STATES else None,
        retry_at=raw.get("retry_at") if state == TaskState.RETRY else None,
        timeline=timeline,
        webhook=decode_webhook(raw),
        retried_by=raw.get("retried_by") or None,
        cancel_requested=bool(raw.get("cancel_requested")),
        dead_letter=(
            state == TaskState.FAILURE
            and not raw.get("retried_by")
            and any(event["event"] == TimelineEvent.RETRY for event in timeline)
        ),
        task_name=raw.get("task") or "",
        call_kwargs=kwargs,
        call_args=args,
    )


def decode_timeline(raw: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """A task's timeline from its ledger fields, oldest first; an entry that cannot be
    read is left out, not fatal."""
    numbered = []
    for name, value in raw.items():
        if name.startswith(TIMELINE_FIELD_PREFIX):
            number = _int(name.removeprefix(TIMELINE_FIELD_PREFIX))
            event = _json_dict(value)
            if number and event.get("event") and event.get("at"):
                numbered.append((number, event))
    return tuple(
        {
            "at": str(event["at"]),
            "event": str(event["event"]),
            "attempt": _int(event.get("attempt")),
            "worker": str(event["worker"]) if event.get("worker") else None,
            "detail": str(event["detail"]) if event.get("detail") else None,
        }
        for _, event in sorted(numbered, key=lambda pair: pair[0])
    )


def decode_webhook(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """A task's webhook (None without a ``callback_url``): its address, its delivery's
    state and its latest attempts, oldest first; an unreadable attempt is left out."""
    url = raw.get("callback_url")
    if not url:
        return None
    attempts = []
    for name in sorted(n for n in raw if n.startswith(WEBHOOK_ATTEMPT_PREFIX)):
        attempt = _json_dict(raw[name])
        if attempt.get("at"):
            status = attempt.get("status")
            attempts.append({
                "at": str(attempt["at"]),
                "status": status if isinstance(status, int) else None,
                "latency_ms": _int(attempt.get("latency_ms")),
                "error": str(attempt["error"]) if attempt.get("error") else None,
            })  # fmt: skip
    state = raw.get("webhook_state")
    return {
        "url": url,
        "state": state if state in ("pending", "delivered", "failed") else "pending",
        "attempts": attempts[-SHOWN_WEBHOOK_ATTEMPTS:],
    }


def record_state(raw: Mapping[str, str], meta: Mapping[str, Any] | None) -> TaskState:
    """The task's state: Celery's (the result backend refuses a state that may not follow
    the final one the ledger filed, so the two agree); while Celery has none, STARTED or
    QUEUED from the ledger. The ledger files a final state just before Celery stores it,
    so in between the task still shows as running, never as finished without a result.

    One exception: a pool process that outlives its end (its worker's main process
    filed its hard time limit, or Celery's revoke) may store a last PROGRESS over that
    FAILURE or REVOKED before it sees the end and stops. The end the ledger filed, with
    its error, stands over such a report. (A SUCCESS is filed by the process that ran
    the job, which reports nothing after it; until Celery holds its result, it shows as
    running.)
    """
    status = meta.get("status") if meta else None
    final = raw.get("final")
    if status == TaskState.PROGRESS and final in ENDED_ELSEWHERE_STATES:
        return TaskState(final)
    if status in TaskState.__members__:
        return TaskState(status)
    return TaskState.STARTED if raw.get("started_at") else TaskState.QUEUED


def describe_exception(exception: Any) -> dict[str, str]:
    """Celery's stored exception as ``{"type", "message"}``, never a traceback."""
    if not isinstance(exception, BaseException):
        if isinstance(exception, Mapping) and "exc_type" in exception:  # not decoded
            return {
                "type": str(exception["exc_type"]),
                "message": str(exception.get("exc_message")),
            }
        return {"type": "Error", "message": str(exception)}
    error_type = type(exception).__name__
    message = " ".join(str(part) for part in exception.args)
    if error_type == "TimeLimitExceeded":  # Celery's message is only the limit
        message = f"hard time limit exceeded ({message} s): the job's process was killed"
    return {"type": error_type, "message": message}


def error_line(error: Mapping[str, str]) -> str:
    """An error as one line of a timeline: ``Type: message``."""
    return f"{error['type']}: {error['message']}"


def with_percent(progress: dict[str, Any] | None, state: TaskState) -> dict[str, Any] | None:
    """Progress with its percentage; a finished task that reported none is at 100 %.
    Only a task in progress has an ETA: one that stopped keeps where it got to."""
    if progress is None:
        return {"current": 1, "total": 1, "percent": 100} if state == TaskState.SUCCESS else None
    if state != TaskState.PROGRESS:
        progress = {name: value for name, value in progress.items() if name != "eta_seconds"}
    current, total = progress["current"], progress["total"]
    if total > 0:
        percent = max(0, min(100, round(100 * current / total)))
    else:
        percent = 100 if state == TaskState.SUCCESS else 0
    return {**progress, "percent": percent}


def json_compatible(value: Any) -> Any:
    """A value as JSON shows it: dates in ISO 8601, UUIDs and decimals as strings."""
    if isinstance(value, dict):
        return {str(key): json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_compatible(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    return value


def encode_inputs(inputs: Mapping[str, Any] | list[Any] | tuple[Any, ...]) -> str:
    """Inputs as the ledger stores them: Celery's JSON (kombu's types), compact and
    unescaped, so dates, UUIDs and decimals come back as they went in, and non-ASCII text
    costs its UTF-8 bytes rather than up to 12 a character."""
    value = dict(inputs) if isinstance(inputs, Mapping) else list(inputs)
    return kombu_json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_dict(text: str | None) -> dict[str, Any]:
    value = _kombu_json(text)
    return value if isinstance(value, dict) else {}


def _json_list(text: str | None) -> list[Any]:
    value = _kombu_json(text)
    return value if isinstance(value, list) else []


def _kombu_json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return kombu_json.loads(text)
    except Exception:  # whatever another producer stored: shown as absent
        return None


def progress_report(value: Any) -> dict[str, Any] | None:
    """A progress report, if ``value`` (stored JSON or a result) is one: whole or real
    numbers ``current`` and ``total``, an optional text ``message`` and an optional
    ``eta_seconds``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping):
        return None
    current, total = value.get("current"), value.get("total")
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in (current, total)):
        return None
    progress: dict[str, Any] = {"current": int(current), "total": int(total)}
    if isinstance(value.get("message"), str):
        progress["message"] = value["message"]
    eta = value.get("eta_seconds")
    if isinstance(eta, (int, float)) and not isinstance(eta, bool) and 0 <= eta < 1e9:
        progress["eta_seconds"] = eta
    return progress


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except (TypeError, ValueError):
        return 0
