"""One Redis subscription per web process, shared by every event stream it serves.

A stream used to hold a pubsub connection of its own, so 50 open pages took 50 of the
pool's connections (and 100 under load). Now each process pattern-subscribes once to
every task's result channel and every announcement channel, on the result backend's
Redis, and a thread hands each message to the streams that asked for its channel. A
stream registers its channels before it reads the records they announce changes to,
so no change falls in between.

The cost: every web process receives every task's state changes, whether or not a
page follows them. That is one small message per change per web process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from celery.backends.base import Backend
from redis.exceptions import ConnectionError as RedisConnectionError

from ..store.keys import ALL_SUBMITTED_CHANNEL, owner_channel

logger = logging.getLogger(__name__)


class Subscription:
    """The channels one stream listens to, and the messages that came for them."""

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.channels: set[bytes] = set()
        self.messages: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def add(self, channel: str | bytes) -> None:
        """Receive the messages of ``channel`` from now on."""
        self.fanout.listen(self, channel if isinstance(channel, bytes) else channel.encode())

    def remove(self, channel: str | bytes) -> None:
        """Stop receiving ``channel``."""
        self.fanout.ignore(self, channel if isinstance(channel, bytes) else channel.encode())

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next message within ``timeout`` seconds, or None."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop receiving anything."""
        for channel in list(self.channels):
            self.remove(channel)


class Fanout:
    """The process's one subscription, and who listens to which channel."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.patterns = [
            backend.get_key_for_task("*"),
            owner_channel("*"),
            ALL_SUBMITTED_CHANNEL,
        ]
        self.listeners: dict[bytes, set[Subscription]] = {}
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.ready = threading.Event()

    def subscribe(self) -> Subscription:
        """A new stream's subscription (the process's thread starts on first use, and
        again in a forked child)."""
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.ready.clear()
                threading.Thread(target=self.run, name="event-fanout", daemon=True).start()
        if not self.ready.wait(timeout=2):
            raise RedisConnectionError("The event fan-out could not subscribe to Redis.")
        return Subscription(self)

    def listen(self, subscription: Subscription, channel: bytes) -> None:
        """Deliver ``channel``'s messages to ``subscription``."""
        with self.lock:
            self.listeners.setdefault(channel, set()).add(subscription)
        subscription.channels.add(channel)

    def ignore(self, subscription: Subscription, channel: bytes) -> None:
        """Stop delivering ``channel`` to ``subscription``."""
        with self.lock:
            listeners = self.listeners.get(channel)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self.listeners[channel]
        subscription.channels.discard(channel)

    def run(self) -> None:
        """Receive and hand out messages for as long as the process lives; reconnect
        after a dropped connection (redis-py subscribes the patterns again)."""
        pubsub = self.backend.client.pubsub(ignore_subscribe_messages=True)
        while True:
            try:
                if not pubsub.patterns:
                    pubsub.psubscribe(*self.patterns)
                    self.ready.set()
                message = pubsub.get_message(timeout=1.0)
            except Exception:  # Redis away: the streams send heartbeats meanwhile
                logger.warning("The event fan-out lost Redis; reconnecting", exc_info=True)
                time.sleep(1)
                continue
            if message is None or message["type"] not in ("pmessage", "message"):
                continue
            with self.lock:
                listeners = list(self.listeners.get(message["channel"], ()))
            for subscription in listeners:
                subscription.messages.put(message)
