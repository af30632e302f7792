"""What the broker holds: messages waiting in each queue, asked through kombu, so the
answer is right for every broker Celery supports (Redis, RabbitMQ, ...)."""

from __future__ import annotations

from collections.abc import Iterable

from amqp.exceptions import NotFound
from celery import Celery
from kombu.exceptions import ChannelError


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
