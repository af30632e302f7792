"""Celery's Redis result backend as this service configures it: no per-submission
subscription, and a bounded, blocking connection pool."""

from __future__ import annotations

from typing import Any

import redis
from celery.backends.redis import RedisBackend


class SubmitOnlyRedisBackend(RedisBackend):
    """The Redis result backend, minus the producer's result subscription, on a bounded
    pool.

    Celery's Redis backend subscribes the submitting process to each task's result
    channel in ``on_task_call`` and keeps it until ``.get()`` or ``.forget()`` runs, which
    a web process never does: each submission costs a SUBSCRIBE (and, since Celery 5.5,
    an UNSUBSCRIBE from ``AsyncResult.__del__``) and holds memory meanwhile. Upstream:
    celery/celery#4707 (channels never unsubscribed when results are not fetched),
    #5320 (the backend not unsubscribing in all cases) and #10477 (``__del__``
    re-entering the pubsub lock inside ``apply_async``). ``AsyncResult.get()`` still
    subscribes on demand, so nothing else changes.

    Its connections come from a bounded, blocking pool of ``redis_max_connections``
    (REDIS_MAX_CONNECTIONS), as the ledger's do: Celery's default pool is unbounded, so a
    thousand event streams reading at once opened a connection each, and bounded it
    raises "Too many connections" instead of waiting for one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Celery's Redis backend, on redis-py's BlockingConnectionPool."""
        kwargs.setdefault("connection_pool", redis.BlockingConnectionPool)
        super().__init__(*args, **kwargs)

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe at submission."""
