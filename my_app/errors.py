"""Error responses: every error is JSON in flask-smorest's shape, Redis outages are 503."""

from __future__ import annotations

from flask import Flask, current_app
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import Conflict, HTTPException, ServiceUnavailable, TooManyRequests

from .extensions import api
from .rate_limit import RateLimited
from .submission import IdempotencyConflict

RETRY_AFTER_SECONDS = 5


def json_error(
    error: HTTPException, message: str, headers: dict[str, str] | None = None
) -> tuple[dict, int, dict]:
    """An error response in the API's shape."""
    error.data = {"message": message, "headers": headers or {}}
    return api.handle_http_exception(error)


def queue_unavailable(error: Exception) -> tuple[dict, int, dict]:
    """Answer 503 when Redis (broker, results or ledger) cannot be reached."""
    current_app.logger.warning("Redis unavailable: %s", error)
    return json_error(
        ServiceUnavailable(),
        "The task queue is unavailable right now (Redis did not answer); "
        "nothing was queued. Try again shortly.",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def rate_limited(error: RateLimited) -> tuple[dict, int, dict]:
    """Answer 429 with the seconds until the window reopens."""
    return json_error(TooManyRequests(), str(error), {"Retry-After": str(error.retry_after)})


def idempotency_conflict(error: IdempotencyConflict) -> tuple[dict, int, dict]:
    """Answer 409 when an Idempotency-Key is reused with another request."""
    return json_error(Conflict(), str(error))


def register_error_handlers(app: Flask) -> None:
    """Map service and infrastructure failures to HTTP errors (HTTP errors are the Api's)."""
    for error in (RedisConnectionError, RedisTimeoutError, OperationalError):
        app.register_error_handler(error, queue_unavailable)
    app.register_error_handler(RateLimited, rate_limited)
    app.register_error_handler(IdempotencyConflict, idempotency_conflict)
