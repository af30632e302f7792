"""A per-client limit on submissions: a fixed one-minute window counted in Redis."""

from __future__ import annotations

import time

import redis

from .ledger import PREFIX

WINDOW_SECONDS = 60


class RateLimited(Exception):
    """The client submitted more jobs this minute than the limit allows."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"Too many submissions: at most {limit} a minute. Try again in {retry_after} s."
        )
        self.retry_after = retry_after


def count_submission(client: redis.Redis, identity: str, limit: int) -> None:
    """Count one submission by ``identity``; raise RateLimited past ``limit`` a minute.

    ``limit`` 0 turns the limit off and costs nothing.
    """
    if limit <= 0:
        return
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"{PREFIX}rate:{identity}:{window}"
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, WINDOW_SECONDS)
    count = pipe.execute()[0]
    if count > limit:
        raise RateLimited(limit, retry_after=int((window + 1) * WINDOW_SECONDS - now) + 1)
