"""Error responses: every error is JSON in flask-smorest's shape, Redis outages are 503."""

from __future__ import annotations

from flask import Flask, current_app
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import ServiceUnavailable

from .extensions import api

RETRY_AFTER_SECONDS = 5


def queue_unavailable(error: Exception) -> tuple[dict, int, dict]:
    """Answer 503 when Redis (broker, results or ledger) cannot be reached."""
    current_app.logger.warning("Redis unavailable: %s", error)
    unavailable = ServiceUnavailable()
    unavailable.data = {
        "message": "The task queue is unavailable right now (Redis did not answer); "
        "nothing was queued. Try again shortly.",
        "headers": {"Retry-After": str(RETRY_AFTER_SECONDS)},
    }
    return api.handle_http_exception(unavailable)


def register_error_handlers(app: Flask) -> None:
    """Map infrastructure failures to HTTP errors (HTTP errors are the Api's)."""
    for error in (RedisConnectionError, RedisTimeoutError, OperationalError):
        app.register_error_handler(error, queue_unavailable)
