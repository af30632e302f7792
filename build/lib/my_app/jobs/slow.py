"""The seed job: counts seconds, one step a second (or ``step_seconds``)."""

from __future__ import annotations

import time

from . import ReportProgress


def count_slowly(
    name: str, seconds: int, report_progress: ReportProgress, step_seconds: float = 1.0
) -> str:
    """Work ``seconds`` steps of ``step_seconds`` each, reporting after each, and greet
    ``name``."""
    if seconds:
        report_progress(0, seconds)
    for step in range(1, seconds + 1):
        time.sleep(step_seconds)
        report_progress(step, seconds)
    return f"Task completed for {name}!"
