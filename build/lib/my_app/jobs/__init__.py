"""The work itself: plain functions, one module per job, free of Celery and Flask.

Each takes a ``report_progress`` callable so it can be run and tested on its own.
"""

from __future__ import annotations

from typing import Protocol


class ReportProgress(Protocol):
    """Called by a job after each step; may raise to stop the job (a cancellation)."""

    def __call__(self, current: int, total: int, message: str | None = None) -> None: ...
