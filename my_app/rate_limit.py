"""The per-client limit on submissions: a fixed one-minute window, counted in Redis.

The counting itself happens inside the submission script (``submission.SUBMIT_SCRIPT``).
"""

from __future__ import annotations

WINDOW_SECONDS = 60


class RateLimited(Exception):
    """The client submitted more jobs this minute than the limit allows."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"Too many submissions: at most {limit} a minute. Try again in {retry_after} s."
        )
        self.retry_after = retry_after
