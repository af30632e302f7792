"""The worker's side of a job: its start, live progress, artifacts, cancel and time limits."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded
from flask import current_app

from .. import lifecycle
from ..store.ledger import ledger_of


class JobCancelled(Exception):
    """Raised at a step boundary when the task's cancellation was requested."""


class JobTimeLimitExceeded(Exception):
    """The job ran past its soft time limit and was stopped."""


class JobRun:
    """One execution of a task, seen from the worker; its transitions go through
    ``my_app.lifecycle``."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.task_id: str = task.request.id
        self.ledger = ledger_of()
        self.saved_artifacts: list[str] = []

    def start(self) -> None:
        """Record the start; a task cancelled while queued stops here."""
        if lifecycle.started(self.ledger, self.task_id, self.task.request.hostname or ""):
            raise JobCancelled

    def report(self, current: int, total: int, message: str | None = None) -> None:
        """Publish progress (it reaches event streams at once) unless cancelled."""
        if lifecycle.should_stop(self.ledger, self.task_id):
            raise JobCancelled
        progress: dict[str, Any] = {"current": current, "total": total}
        if message:
            progress["message"] = message
        lifecycle.progressed(self.task, progress)

    def save_artifact(self, name: str, data: bytes) -> str:
        """Store a file the job produced; returns the URL it is served at."""
        max_bytes = current_app.config["ARTIFACT_MAX_BYTES"]
        lifecycle.artifact_saved(self.ledger, self.task_id, name, data, max_bytes)
        self.saved_artifacts.append(name)
        return f"/api/tasks/{self.task_id}/artifacts/{name}"

    def discard_artifacts(self) -> None:
        """Drop what a failed run produced: no half-finished set of files is served."""
        lifecycle.artifacts_discarded(self.ledger, self.task_id, self.saved_artifacts)

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
