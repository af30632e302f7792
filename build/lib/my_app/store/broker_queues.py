"""What the broker holds: messages waiting in each queue, asked through kombu, so the
answer is right for every broker Celery supports (Redis, RabbitMQ, ...)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import redis
from amqp.exceptions import NotFound
from celery import Celery
from kombu.exceptions import ChannelError

from . import job_metrics


def waiting_messages(celery_app: Celery, queue_names: Iterable[str]) -> dict[str, int]:
    """How many messages wait in each queue (0 for a queue the broker does not have)."""
    depths = {}
    # A connection of its own, not one from Celery's producer pool: after Redis paused or
    # restarted, a pooled connection can be left without its transport, and every ask
    # would fail on it (kombu: 'NoneType' ... '_used_channel_ids') until the process ends.
    with celery_app.connection_for_read() as connection:
        for name in queue_names:
            # A channel of its own: a missing queue closes an AMQP channel.
            with connection.channel() as channel:
                try:
                    depths[name] = channel.queue_declare(name, passive=True).message_count
                except (ChannelError, NotFound):
                    depths[name] = 0
    return depths


#: How long a process reuses a queue's depth for the lost-task check.
RECENT_DEPTH_SECONDS = 1.0
#: Per Celery app: each queue's depth, and when it was asked (time.monotonic()).
_recent_depths: weakref.WeakKeyDictionary[Celery, dict[str, tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)
_recent_depths_lock = threading.Lock()


def recent_waiting_messages(celery_app: Celery, queue_names: Iterable[str]) -> dict[str, int]:
    """``waiting_messages``, asked at most once a second per queue and process.

    Asking opens a broker channel, which on Redis is a connection of its own (about
    5 ms), and every read of a task that has waited a while asks: a page polling a
    backlog would open a connection a request. A depth a second old is as good for
    that check, since the task it is for has waited far longer (LOST_CHECK_AFTER_SECONDS).
    """
    now = time.monotonic()
    known: dict[str, int] = {}
    with _recent_depths_lock:
        remembered = _recent_depths.setdefault(celery_app, {})
        for name in set(queue_names):
            seen = remembered.get(name)
            if seen is not None and now - seen[0] < RECENT_DEPTH_SECONDS:
                known[name] = seen[1]
    missing = set(queue_names) - set(known)
    if missing:
        asked = waiting_messages(celery_app, missing)
        with _recent_depths_lock:
            remembered.update({name: (now, depth) for name, depth in asked.items()})
        known.update(asked)
    return known


def queue_overview(
    celery_app: Celery,
    client: redis.Redis,
    queue_names: list[str],
    heartbeats: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each queue's depth (the broker's count), how long its oldest job not yet taken has
    waited (0 when none waits), and the live workers consuming it (from ``heartbeats``,
    ``ledger.worker_heartbeats``): what ``/api/system`` shows and ``/metrics`` exports."""
    depths = waiting_messages(celery_app, queue_names)
    ages = job_metrics.oldest_waiting_ages(client, queue_names)
    return [
        {
            "name": name,
            "depth": depths.get(name, 0),
            "oldest_waiting_seconds": ages[name] if depths.get(name) else 0.0,
            "consumers": sorted(w for w, beat in heartbeats.items() if name in beat["queues"]),
        }
        for name in queue_names
    ]
