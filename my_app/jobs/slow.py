"""The seed job: counts seconds, one step a second."""

from __future__ import annotations

import time

from . import ReportProgress


def count_slowly(name: str, seconds: int, report_progress: ReportProgress) -> str:
    """Work ``seconds`` one-second steps, reporting after each, and greet ``name``."""
    if seconds:
        report_progress(0, seconds)
    for step in range(1, seconds + 1):
        time.sleep(1)
        report_progress(step, seconds)
    return f"Task completed for {name}!"
