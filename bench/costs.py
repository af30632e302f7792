"""What one operation costs: Redis round trips and commands, and CPU of the processes that
serve it, measured around a round of load.

Round trips are Redis's own count of the reads it processed (``INFO stats``
``total_reads_processed``): a pipeline or a MULTI/EXEC block arrives in one read, so this
is what each client's requests cost in trips to Redis. CPU is user + system time of the
serving processes and their children (gunicorn's workers, a worker's pool), from psutil.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
import redis


@dataclass
class Cost:
    """Totals over a measured span, and how many operations it covered."""

    round_trips: int = 0
    commands: int = 0
    cpu_seconds: float = 0.0
    operations: int = 0

    def per_operation(self) -> dict[str, float]:
        """Round trips, commands and CPU milliseconds per operation."""
        n = max(1, self.operations)
        return {
            "round_trips": round(self.round_trips / n, 2),
            "commands": round(self.commands / n, 2),
            "cpu_ms": round(1000 * self.cpu_seconds / n, 3),
        }


@dataclass
class CostMeter:
    """Adds up the cost of several measured spans (one per round)."""

    redis_url: str
    total: Cost = field(default_factory=Cost)

    @contextmanager
    def measure(self, processes: Iterable[psutil.Process]) -> Iterator[Cost]:
        """Measure one span; set ``operations`` on the yielded Cost before it ends."""
        processes = list(processes)
        client = redis.Redis.from_url(self.redis_url)
        reads, commands = stats(client)
        cpu = cpu_seconds(processes)
        span = Cost()
        yield span
        after_reads, after_commands = stats(client)
        # Less the INFO that measured (one read, one command).
        self.total.round_trips += after_reads - reads - 1
        self.total.commands += after_commands - commands - 1
        self.total.cpu_seconds += cpu_seconds(processes) - cpu
        self.total.operations += span.operations
        client.close()


def stats(client: redis.Redis) -> tuple[int, int]:
    """Redis's counts of reads and commands processed so far."""
    info = client.info("stats")
    return info["total_reads_processed"], info["total_commands_processed"]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU of ``processes`` and all their children, in seconds."""
    total = 0.0
    seen: set[int] = set()
    for process in processes:
        try:
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            if member.pid in seen:
                continue
            seen.add(member.pid)
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total
