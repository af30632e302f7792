"""OpenTelemetry, where it is configured: the Flask and Celery instrumentations, so one
trace runs from the HTTP request that queues a job through the worker that runs it (the
Celery instrumentation carries the trace context in the task message's headers).

Off unless ``OTEL_ENABLED`` is set (or ``OTEL_SERVICE_NAME`` is in the environment) and
the ``otel`` extra is installed. Exporters and sampling are the SDK's own settings
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ...), configured by ``opentelemetry-instrument`` or your
own TracerProvider.
"""

from __future__ import annotations

import os

from celery.signals import worker_process_init
from flask import Flask


def enabled(app: Flask) -> bool:
    """Whether tracing is asked for."""
    return bool(app.config.get("OTEL_ENABLED") or os.environ.get("OTEL_SERVICE_NAME"))


def init_app(app: Flask) -> None:
    """Instrument this app's requests and its Celery app, when tracing is asked for."""
    if not enabled(app):
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app)
    instrument_celery()


def instrument_celery() -> None:
    """Trace task publishing and running (Celery's signals), once per process."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


@worker_process_init.connect(weak=False)
def instrument_pool_process(**_: object) -> None:
    """A prefork pool process instruments itself after the fork, as the instrumentation's
    documentation asks."""
    if os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("OTEL_ENABLED"):
        instrument_celery()
