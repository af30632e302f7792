"""Deleting expired artifacts: a consumer bootstep that, on the consumer's own timer,
deletes the files and uploads of tasks that expired or were purged
(``my_app.store.artifacts.sweep_expired``; each is claimed first, so of several workers
only one deletes it). A directory or a bucket keeps files forever unless someone does.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from ..store.artifacts import artifact_store, sweep_expired
from ..store.ledger import ledger_of

logger = logging.getLogger(__name__)


class ArtifactSweep(bootsteps.StartStopStep):
    """Sweep now, then each ``ARTIFACT_SWEEP_SECONDS``."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_entry = None

    def start(self, consumer: Any) -> None:
        """Start sweeping on the consumer's timer."""
        flask_app = consumer.app.Task.flask_app
        self.sweep(consumer)
        self.timer_entry = consumer.timer.call_repeatedly(
            flask_app.config["ARTIFACT_SWEEP_SECONDS"], self.sweep, (consumer,), priority=20
        )

    def stop(self, consumer: Any) -> None:
        """Stop sweeping."""
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def sweep(self, consumer: Any) -> None:
        """Delete what is due; an outage of Redis or the store waits for the next tick."""
        flask_app = consumer.app.Task.flask_app
        try:
            sweep_expired(ledger_of(flask_app).client, artifact_store(flask_app))
        except Exception:
            logger.warning("Could not delete expired artifacts", exc_info=True)
