"""The worker's side of a job: its start in the ledger, live progress, cooperative cancel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore
from flask import current_app

from . import ledger
from .extensions import redis_client
from .jobs import ReportProgress


class JobCancelled(Exception):
    """Raised at a step boundary when the task's cancellation was requested."""


class JobRun:
    """One execution of a task, seen from the worker."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.task_id: str = task.request.id
        self.last_progress: dict[str, Any] | None = None

    def start(self) -> None:
        """Record the start; a task cancelled while queued stops here."""
        expires = current_app.config["RESULT_EXPIRES"]
        if ledger.mark_started(redis_client.client, self.task_id, expires):
            raise JobCancelled

    def report(self, current: int, total: int, message: str | None = None) -> None:
        """Publish progress (it reaches event streams at once) unless cancelled."""
        if ledger.cancel_requested(redis_client.client, self.task_id):
            raise JobCancelled
        progress: dict[str, Any] = {"current": current, "total": total}
        if message:
            progress["message"] = message
        self.task.update_state(state="PROGRESS", meta=progress)
        self.last_progress = progress

    def finish(self) -> None:
        """Keep the last progress beside the result, which replaces it in Celery."""
        if self.last_progress is not None:
            ledger.record_progress(redis_client.client, self.task_id, self.last_progress)

    def revoke(self) -> None:
        """End as REVOKED, the state Celery gives a task revoked before it ran."""
        self.task.backend.mark_as_revoked(
            self.task_id, reason="cancelled", request=self.task.request
        )


@contextmanager
def job_run(task: Task) -> Iterator[ReportProgress]:
    """Run a job's body for ``task``; yields the progress reporter to hand to the job.

    Cancellation is cooperative: the job stops at its next progress report, so a pool
    process is never killed while it may be running something else.
    """
    if task.request.id is None:  # called directly, not through a worker
        yield lambda current, total, message=None: None
        return
    run = JobRun(task)
    try:
        run.start()
        yield run.report
    except JobCancelled:
        run.revoke()
        raise Ignore() from None
    finally:
        run.finish()


def retry_job(task: Task, error: Exception, countdown: float) -> NoReturn:
    """Retry ``task`` in ``countdown`` seconds (state RETRY), noting when in the ledger."""
    retry_at = datetime.now(UTC) + timedelta(seconds=countdown)
    ledger.record_retry(redis_client.client, task.request.id, retry_at.isoformat())
    raise task.retry(exc=error, countdown=countdown)
