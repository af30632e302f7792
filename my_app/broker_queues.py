"""What the broker holds: messages waiting in each queue, asked through kombu, so the
answer is right for every broker Celery supports (Redis, RabbitMQ, ...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from amqp.exceptions import NotFound
from celery import Celery
from kombu.exceptions import ChannelError

from .store import job_metrics


def waiting_messages(celery_app: Celery, queue_names: Iterable[str]) -> dict[str, int]:
    """How many messages wait in each queue (0 for a queue the broker does not have)."""
    depths = {}
    with celery_app.connection_or_acquire() as connection:
        for name in queue_names:
            # A channel of its own: a missing queue closes an AMQP channel.
            with connection.channel() as channel:
                try:
                    depths[name] = channel.queue_declare(name, passive=True).message_count
                except (ChannelError, NotFound):
                    depths[name] = 0
    return depths


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
