"""Leases on the messages a worker holds, so a dead worker's jobs run again within a
minute while a living worker's long jobs never run twice.

This module is the one place that reaches into kombu's Redis transport (its
``unacked_index_key``, its QoS's ``_delivered`` and ``restore_visible``): kombu documents
no API for either, so ``check_redis_transport`` looks for each at start-up and the worker
refuses to start when a kombu release has moved one.

Celery's Redis transport keeps each unacknowledged (late-acked or prefetched) message
in kombu's ``unacked`` hash, scored in ``unacked_index`` by when it was delivered; every
worker's ``restore_visible`` sweep puts back the ones older than ``visibility_timeout``.
With only that, the timeout must outlast the longest job (else a living worker's job is
delivered twice: celery/celery#5935, and #3270 for countdowns) and a dead worker's jobs
wait that long. This consumer bootstep renews the score of every message the worker still holds
each third of the timeout, so the timeout can be short (``broker_transport_options``,
30 s): a held message stays invisible for as long as its worker lives, and becomes
visible ``visibility_timeout`` after its worker's last renewal.

Then someone must put it back. kombu's own sweep runs on a 10 s timer but acts on one
call in ten, about every 100 s whatever its options say, so the bootstep sweeps itself
on each renewal (``RESTORE_SWEEP``): a dead worker's jobs are back in their queue at most
``visibility_timeout`` plus one renewal interval (40 s) after its last renewal, whatever
the other workers are doing.

It also keeps the worker's heartbeat in the ledger's Redis (``my_app.store.heartbeats``:
the queues it consumes), which the API reads to say a running task's worker is gone, or that
no worker consumes a waiting task's queue, and ``/readyz`` to say whether every queue
has a consumer. On other brokers (RabbitMQ
redelivers a dead consumer's messages itself) only the heartbeat is kept.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import kombu
from celery import bootsteps
from celery.worker import state as worker_state

from ..store.ledger import ledger_of

logger = logging.getLogger(__name__)


class LeaseRenewal(bootsteps.StartStopStep):
    """A consumer bootstep (Celery's documented extension point) that renews leases and
    the worker's heartbeat on the consumer's own timer, in its event loop."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_entry = None

    def start(self, consumer: Any) -> None:
        """Check the transport, then renew now and each third of the visibility timeout."""
        check_redis_transport(consumer.task_consumer.channel)
        self.renew(consumer)
        self.timer_entry = consumer.timer.call_repeatedly(
            renewal_interval(consumer.app), self.renew, (consumer,), priority=10
        )

    def stop(self, consumer: Any) -> None:
        """Stop renewing (a warm shutdown acknowledges or restores what it holds; a lost
        broker connection restarts the consumer, which starts renewing again)."""
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def shutdown(self, consumer: Any) -> None:
        """The worker is stopping: it consumes nothing from now on."""
        self.stop(consumer)
        try:
            ledger_of(consumer.app.Task.flask_app).heartbeats.gone(consumer.hostname)
        except Exception:  # Redis away: the heartbeat expires on its own
            logger.warning("Could not remove this worker's heartbeat", exc_info=True)

    def renew(self, consumer: Any) -> None:
        """Push back the visibility of every message this worker holds, and beat."""
        app = consumer.app
        try:
            channel = consumer.task_consumer.channel
            renew_held_messages(channel)
            if app.Task.flask_app.config["RESTORE_SWEEP"]:
                restore_expired_messages(channel)
            queues = sorted(queue.name for queue in consumer.task_consumer.queues)
            running = sorted(request.id for request in worker_state.active_requests)
            ledger_of(app.Task.flask_app).heartbeats.beat(
                consumer.hostname, queues, 3 * renewal_interval(app), running
            )
        except Exception:  # a broker or Redis outage: the next tick tries again
            logger.warning("Could not renew this worker's leases", exc_info=True)


def renewal_interval(app: Any) -> float:
    """A third of the transport's visibility timeout, in seconds."""
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", 3600)) / 3


def is_redis_transport(channel: Any) -> bool:
    """Whether ``channel`` is kombu's Redis transport's (the one that needs leases)."""
    return hasattr(channel, "unacked_index_key")


def check_redis_transport(channel: Any) -> None:
    """Fail the worker's start, loudly, when kombu's Redis transport no longer has what
    the leases use (setup.cfg pins kombu below its next minor release for this)."""
    if not is_redis_transport(channel):
        return
    qos = getattr(channel, "qos", None)
    restore = getattr(qos, "restore_visible", None)
    missing = [
        name
        for name, present in (
            ("QoS._delivered", isinstance(getattr(qos, "_delivered", None), dict)),
            (
                "QoS.restore_visible(num=, interval=)",
                restore is not None
                and {"num", "interval"} <= set(inspect.signature(restore).parameters),
            ),
            ("Channel.unacked_restore_limit", hasattr(channel, "unacked_restore_limit")),
        )
        if not present
    ]
    if missing:
        raise RuntimeError(
            f"kombu {kombu.__version__}'s Redis transport lacks {', '.join(missing)}, which "
            "my_app.worker.leases needs to renew and restore held messages: pin the kombu "
            "release setup.cfg names."
        )


def restore_expired_messages(channel: Any) -> None:
    """Put back in their queues the held messages whose lease has expired (their worker
    died), with kombu's own restore, now rather than on one call in ten."""
    if is_redis_transport(channel):
        channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)


def renew_held_messages(channel: Any) -> int:
    """Re-score, in the Redis transport's ``unacked_index``, the messages this channel
    holds unacknowledged (kombu's QoS keeps them in ``_delivered``); ``XX`` so a message
    acknowledged meanwhile is not added back. Returns how many it renewed."""
    if not is_redis_transport(channel):
        return 0
    index = channel.unacked_index_key
    held = list(channel.qos._delivered)
    if not held:
        return 0
    now = time.time()
    with channel.conn_or_acquire() as client:
        client.zadd(index, dict.fromkeys(held, now), xx=True)
    return len(held)
