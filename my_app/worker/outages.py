"""A worker rides out a Redis outage; the web does not.

A web request that finds Redis away answers 503 at once (``my_app.errors``): its caller
can try again. A running job cannot hand its work back, so on the worker's side every
Redis call (the ledger's marks, cancel checks, progress, artifacts, heartbeats, the
result) waits for Redis to come back, with redis-py's ``Retry`` and backoff on the
ledger's clients and Celery's ``result_backend_always_retry`` on the result backend, for
about ``REDIS_OUTAGE_GRACE_SECONDS``. Only then does the call fail, and with it the job.

The grace is a number of attempts a second apart: a Redis that refuses connections is
waited for that long; one that hangs (paused, or a network that drops packets) costs a
socket timeout per attempt on top, so the wait is longer, never shorter.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from typing import Any

from celery.signals import worker_init
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, OutOfMemoryError, TimeoutError
from redis.retry import Retry

logger = logging.getLogger(__name__)

#: How often a worker process says it is waiting for Redis, in seconds.
ANNOUNCE_EVERY_SECONDS = 60.0
#: The longest pause between two attempts, in seconds.
BACKOFF_CAP_SECONDS = 1.0
#: The first pause, in seconds; each next one doubles up to the cap.
BACKOFF_BASE_SECONDS = 0.05


def attempts_within(grace_seconds: float) -> int:
    """How many retries, a second apart at most, cover ``grace_seconds``."""
    return math.ceil(grace_seconds / BACKOFF_CAP_SECONDS)


#: What is retried: redis-py's connection errors and timeouts, and the socket's own
#: errors, which a connection attempt raises before redis-py wraps them (a refused
#: connection is an ``OSError`` inside redis-py's connect retry).
#: A full Redis (OOM) is waited out the same way: jobs finishing and results expiring
#: make room.
RETRIED_ERRORS = (ConnectionError, TimeoutError, socket.timeout, OSError, OutOfMemoryError)


_announced_at = [0.0]


def announce_wait(grace_seconds: float, error: BaseException) -> None:
    """Say, once a minute at most per process, that the worker waits for Redis: an
    operator reading the log sees why jobs pause."""
    now = time.monotonic()
    if now - _announced_at[0] >= ANNOUNCE_EVERY_SECONDS:
        _announced_at[0] = now
        logger.warning(
            "Redis is unreachable or full (%s): waiting up to %g s for it "
            "(REDIS_OUTAGE_GRACE_SECONDS) before a job fails",
            type(error).__name__,
            grace_seconds,
        )


class AnnouncedBackoff(ExponentialBackoff):
    """redis-py's exponential backoff, announcing the wait (``announce_wait``)."""

    def __init__(self, grace_seconds: float) -> None:
        super().__init__(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS)
        self.grace_seconds = grace_seconds

    def compute(self, failures: int) -> float:
        """The pause before the next attempt; the first failure is announced."""
        if failures == 1:
            announce_wait(self.grace_seconds, ConnectionError("retrying"))
        return super().compute(failures)


def outage_retry(grace_seconds: float) -> Retry:
    """redis-py's ``Retry`` of connection errors and timeouts for ``grace_seconds``."""
    backoff = AnnouncedBackoff(grace_seconds)
    return Retry(backoff, retries=attempts_within(grace_seconds), supported_errors=RETRIED_ERRORS)


def result_backend_retries(grace_seconds: float) -> dict[str, Any]:
    """Celery settings under which storing a result (progress, a final state) waits for
    Redis for about ``grace_seconds``: Celery's ``result_backend_always_retry`` loop, the
    one that also retries what ``exception_safe_to_retry`` admits (a full Redis,
    ``my_app.lifecycle.LedgerRedisBackend``). The Redis backend's own ``retry_policy``
    loop is turned off, so the two do not multiply."""
    return {
        "result_backend_always_retry": True,
        # Celery sleeps a random time up to the backoff (full jitter): half of it on
        # average, so twice the attempts.
        "result_backend_max_retries": 2 * attempts_within(grace_seconds),
        "result_backend_base_sleep_between_retries_ms": int(BACKOFF_BASE_SECONDS * 1000),
        "result_backend_max_sleep_between_retries_ms": int(BACKOFF_CAP_SECONDS * 1000),
        "result_backend_transport_options": {"retry_policy": {"max_retries": 0}},
    }


@worker_init.connect(weak=False)
def ride_out_outages(sender: Any, **_: Any) -> None:
    """In a worker (before its pool starts), rebuild the ledger on clients that retry.

    The clients are built again, with ``retry`` from the start, rather than given one
    with ``Redis.set_retry``: redis-py 6's ``set_retry`` fails on the
    BlockingConnectionPool the service uses (it walks ``_available_connections``, which
    only the plain pool has).
    """
    from ..extensions import redis_client

    flask_app = getattr(sender.app.Task, "flask_app", None)
    if flask_app is None:  # a Celery app that is not this service's
        return
    retry = outage_retry(flask_app.config["REDIS_OUTAGE_GRACE_SECONDS"])
    redis_client.init_app(flask_app, retry=retry)
