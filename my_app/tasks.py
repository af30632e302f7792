"""Celery tasks: thin wrappers that run a job from ``my_app.jobs`` inside a worker."""

from __future__ import annotations

from celery import Task, shared_task

from .job_run import job_run
from .jobs.slow import count_slowly


@shared_task(bind=True)
def slow_task(self: Task, name: str, seconds: int = 10) -> str:
    """Count ``seconds`` seconds with progress, then greet ``name``."""
    with job_run(self) as report_progress:
        return count_slowly(name, seconds, report_progress)


#: The task behind each kind of job the API accepts.
TASKS_BY_KIND: dict[str, Task] = {"slow": slow_task}
