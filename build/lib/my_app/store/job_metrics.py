"""Job metrics kept in Redis: counters by event and kind, run-time histograms by kind,
and each queue's waiting tasks (for the age of the oldest).

Kept in Redis rather than in each process: jobs are queued by every web process and
finished by every worker, on any machine, so only a shared store can count them once.
Each update rides in a pipeline the ledger already sends (no extra round trip).
"""

from __future__ import annotations

import math
import time

import redis

from .keys import JOB_COUNTERS, runtime_key, waiting_key

#: Upper bounds, in seconds, of the run-time histogram's buckets.
RUNTIME_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, math.inf)
EVENTS = ("queued", "succeeded", "failed", "revoked", "retried")
#: The event that counts a job's end in each final state.
FINAL_EVENTS = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "revoked"}


def counter_field(event: str, kind: str) -> str:
    """The field of JOB_COUNTERS that counts ``event`` for ``kind`` ("succeeded:email")."""
    return f"{event}:{kind}"


def count_retried(pipe: redis.client.Pipeline, kind: str) -> None:
    """Count a retry (a transient failure, tried again later)."""
    pipe.hincrby(JOB_COUNTERS, counter_field("retried", kind), 1)


def read_counters(client: redis.Redis) -> dict[tuple[str, str], int]:
    """Every counter, by (event, kind)."""
    counters = {}
    for field, value in client.hgetall(JOB_COUNTERS).items():
        event, _, kind = field.partition(":")
        counters[(event, kind)] = int(value)
    return counters


def read_runtimes(
    client: redis.Redis, kinds: list[str]
) -> dict[str, tuple[list[tuple[float, int]], float, int]]:
    """Each kind's histogram: cumulative (bound, count) pairs, the sum and the count."""
    pipe = client.pipeline(transaction=False)
    for kind in kinds:
        pipe.hgetall(runtime_key(kind))
    histograms = {}
    for kind, raw in zip(kinds, pipe.execute(), strict=True):
        cumulative, running = [], 0
        for bound in RUNTIME_BUCKETS:
            running += int(raw.get(f"le:{bound}", 0))
            cumulative.append((bound, running))
        histograms[kind] = (cumulative, float(raw.get("sum", 0)), int(raw.get("count", 0)))
    return histograms


def oldest_waiting_ages(client: redis.Redis, queues: list[str]) -> dict[str, float]:
    """Seconds the oldest job not yet taken has waited in each queue (0 when none)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zrange(waiting_key(queue), 0, 0, withscores=True)
    now = time.time()
    return {
        queue: max(0.0, now - oldest[0][1]) if oldest else 0.0
        for queue, oldest in zip(queues, pipe.execute(), strict=True)
    }
