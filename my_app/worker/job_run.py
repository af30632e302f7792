"""The worker's side of a job: its start, live progress, artifacts, cancel and time limits."""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded
from flask import current_app

from .. import lifecycle
from ..records import ARTIFACT_FIELD_PREFIX
from ..store import artifacts
from ..store.artifacts import artifact_store
from ..store.ledger import StopReason, ledger_of


class JobCancelled(Exception):
    """Raised at a step boundary when the task's cancellation was requested."""


class JobEndedElsewhere(Exception):
    """Raised at a step boundary when the task's end was filed by another process (its
    worker's main process, at its hard time limit) while this one still ran."""


class JobTimeLimitExceeded(Exception):
    """The job ran past its soft time limit and was stopped."""


class JobRun:
    """One execution of a task, seen from the worker; its transitions go through
    ``my_app.lifecycle``."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.task_id: str = task.request.id
        self.ledger = ledger_of()
        self.store = artifact_store()
        self.saved_artifacts: list[str] = []
        self.started_at = time.monotonic()
        self.last_report = 0.0

    def start(self) -> None:
        """Record the start; a task cancelled while queued stops here."""
        if lifecycle.started(self.ledger, self.task):
            raise JobCancelled

    def report(
        self,
        current: int,
        total: int,
        message: str | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        """Publish progress (it reaches event streams at once) unless cancelled."""
        self.last_report = time.monotonic()
        reason = lifecycle.stop_reason(self.ledger, self.task_id)
        if reason == StopReason.CANCELLED:
            raise JobCancelled
        if reason == StopReason.FINISHED:
            raise JobEndedElsewhere
        progress: dict[str, Any] = {"current": current, "total": total}
        if message:
            progress["message"] = message
        if eta_seconds is not None:
            progress["eta_seconds"] = round(eta_seconds, 1)
        lifecycle.progressed(self.ledger, self.task, progress)

    def tick(self, current: int, total: int, unit: str) -> None:
        """Report progress through many small steps (frames), at most once each
        ``PROGRESS_INTERVAL_SECONDS``, with an ETA from the pace so far: the cancel
        check rides on each report, so a cancelled job stops within that interval."""
        now = time.monotonic()
        if now - self.last_report < current_app.config["PROGRESS_INTERVAL_SECONDS"]:
            return
        elapsed = now - self.started_at
        eta = elapsed / current * max(0, total - current) if current else None
        self.report(current, total, f"{unit} {current} of {total}", eta_seconds=eta)

    def save_artifact(self, name: str, data: bytes | str) -> str:
        """Store a file the job produced (its bytes, or the path of a local file);
        returns the URL it is served at."""
        size = len(data) if isinstance(data, bytes) else os.path.getsize(data)
        artifacts.check_size(size, current_app.config["ARTIFACT_MAX_BYTES"])
        self.saved_artifacts.append(name)  # first: a failed upload is cleaned up too
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        lifecycle.artifact_saved(self.ledger, self.store, self.task_id, name, source)
        return f"/api/tasks/{self.task_id}/artifacts/{name}"

    def files_of(self, task_ids: list[str], media_prefix: str = "") -> list[tuple[str, bytes]]:
        """The artifacts (name, bytes) of earlier tasks of this task's owner whose media
        type starts with ``media_prefix``: what a workflow step hands the next. A task
        of another owner, or one that has expired, gives nothing."""
        owner = self.ledger.owner_of(self.task_id)
        found: list[tuple[str, bytes]] = []
        for task_id in task_ids:
            entry = self.ledger.read_entry(task_id)
            if not entry or entry.get("owner") != owner:
                raise LookupError(f"No task {task_id} of this owner has files to use.")
            for field, media_type in sorted(entry.items()):
                name = field.removeprefix(ARTIFACT_FIELD_PREFIX)
                if name != field and media_type.startswith(media_prefix):
                    data = self.store.read(f"{artifacts.task_folder(task_id)}/{name}")
                    if data is not None:
                        found.append((name, data))
        return found

    def discard_artifacts(self) -> None:
        """Drop what a failed run produced: no half-finished set of files is served."""
        lifecycle.artifacts_discarded(self.ledger, self.store, self.task_id, self.saved_artifacts)

    def revoke(self) -> None:
        """End as REVOKED the way Celery's own revoke does: the result, and the
        ``task-revoked`` event that monitors such as Flower end the task on."""
        self.task.backend.mark_as_revoked(
            self.task_id, reason="cancelled", request=self.task.request
        )
        self.task.send_event("task-revoked", terminated=False, signum=None, expired=False)


@contextmanager
def job_run(task: Task) -> Iterator[JobRun]:
    """Run a job's body for ``task`` (inside a worker); yields its JobRun.

    Cancellation is cooperative: the job stops at its next progress report, so a pool
    process is never killed while it may be running something else. A soft time limit
    ends the task FAILURE with "time limit exceeded", its artifacts discarded.
    """
    run = JobRun(task)
    try:
        run.start()
        yield run
    except JobCancelled:
        run.discard_artifacts()
        run.revoke()
        raise Ignore() from None
    except JobEndedElsewhere:
        run.discard_artifacts()
        lifecycle.last_progress.pop(run.task_id, None)
        raise Ignore() from None  # its end stands: store nothing, send nothing
    except SoftTimeLimitExceeded:
        run.discard_artifacts()
        raise JobTimeLimitExceeded("time limit exceeded") from None
    except (Retry, Ignore):
        lifecycle.last_progress.pop(run.task_id, None)  # no final state follows here
        raise
    except Exception:
        run.discard_artifacts()
        raise


def backoff_seconds(retries: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: about base·2^retries, capped, never in lockstep."""
    return min(cap, base * 2**retries) * random.uniform(0.5, 1.0)


def retry_job(task: Task, error: Exception, countdown: float, max_retries: int) -> NoReturn:
    """Retry ``task`` in ``countdown`` seconds (state RETRY; the lifecycle notes when,
    from the retry's message).

    Past ``max_retries`` the task fails with ``error``.
    """
    if task.request.retries >= max_retries:
        raise error
    raise task.retry(exc=error, countdown=countdown, max_retries=max_retries)
