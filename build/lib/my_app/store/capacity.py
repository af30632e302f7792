"""Room left in Redis, so the service refuses new work before Redis refuses its writes.

Redis with a ``maxmemory`` and the ``noeviction`` policy (the one the service needs:
an evicting policy would drop queued messages and ledger entries) refuses every write
once it is full, the ones a running job needs to finish included. So the web stops
accepting submissions a margin earlier (``STORAGE_HEADROOM_PERCENT`` of ``maxmemory``):
the accepted jobs keep that margin to run and store their results, and results expiring
(``RESULT_EXPIRES``) make room again. ``/readyz`` says so as well.

Reading the memory costs an ``INFO memory``, so each process reads it at most once a
``CHECK_EVERY_SECONDS`` and answers from that reading in between.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis

#: How long a process trusts one reading of Redis's memory, in seconds.
CHECK_EVERY_SECONDS = 1.0


class StorageFull(Exception):
    """Redis has no room for new work (the message says how full it is)."""


@dataclass(frozen=True)
class MemoryReading:
    """Redis's memory use against its ``maxmemory`` (0: no limit), in bytes."""

    used: int
    limit: int
    policy: str

    def full_at(self, headroom_percent: float) -> bool:
        """Whether less than ``headroom_percent`` of the limit is left."""
        return self.limit > 0 and self.used >= self.limit * (1 - headroom_percent / 100)

    def describe(self) -> str:
        """How full Redis is, in words."""
        return (
            f"Redis uses {self.used / 2**20:.1f} MiB of its {self.limit / 2**20:.1f} MiB "
            f"maxmemory ({self.used / self.limit:.0%})"
        )


class MemoryGauge:
    """A process's cached reading of one Redis's memory."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.reading: MemoryReading | None = None
        self.read_at = 0.0

    def read(self) -> MemoryReading:
        """The memory reading, at most ``CHECK_EVERY_SECONDS`` old."""
        now = time.monotonic()
        if self.reading is None or now - self.read_at >= CHECK_EVERY_SECONDS:
            info = self.client.info("memory")
            reading = MemoryReading(
                used=int(info.get("used_memory", 0)),
                limit=int(info.get("maxmemory", 0)),
                policy=str(info.get("maxmemory_policy", "")),
            )
            with self.lock:
                self.reading, self.read_at = reading, now
        return self.reading

    def check_room(self, headroom_percent: float) -> None:
        """Raise ``StorageFull`` when less than ``headroom_percent`` is left."""
        reading = self.read()
        if reading.full_at(headroom_percent):
            raise StorageFull(
                f"{reading.describe()}, and new jobs need {headroom_percent:g}% free: "
                "the jobs already accepted keep that room to finish"
            )


def is_out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is Redis refusing a write for
    lack of memory (kombu wraps the broker's in its own ``OperationalError``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, redis.exceptions.OutOfMemoryError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
