"""Error responses: every error is JSON in flask-smorest's shape, Redis outages are 503."""

from __future__ import annotations

from flask import Flask, current_app, url_for
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import (
    BadRequest,
    Conflict,
    HTTPException,
    RequestEntityTooLarge,
    ServiceUnavailable,
)

from .extensions import api
from .store.capacity import StorageFull, is_out_of_memory
from .store.idempotency import IdempotencyConflict
from .submission import InputsTooLarge, PublishUnconfirmed

RETRY_AFTER_SECONDS = 5
#: Room is made as results expire or jobs finish: longer than an outage.
STORAGE_FULL_RETRY_AFTER_SECONDS = 30


def http_error(error: HTTPException) -> tuple[dict, int, dict]:
    """Any HTTP error as flask-smorest's JSON (``code``, ``status``, ``message``,
    ``errors``), always with a message and with werkzeug's own headers (a 405's Allow,
    a 429's Retry-After), minus its HTML content type."""
    payload, code, headers = api.handle_http_exception(error)
    payload.setdefault("message", error.description)
    protocol_headers = {
        name: value for name, value in error.get_headers() if name != "Content-Type"
    }
    return payload, code, {**protocol_headers, **(headers or {})}


def json_error(
    error: HTTPException, message: str, headers: dict[str, str] | None = None
) -> tuple[dict, int, dict]:
    """An error response in the API's shape."""
    error.data = {"message": message, "headers": headers or {}}
    return http_error(error)


def queue_unavailable(error: Exception) -> tuple[dict, int, dict]:
    """Answer 503 when Redis or the broker cannot be reached (or is full)."""
    if is_out_of_memory(error):
        return storage_full(error)
    current_app.logger.warning("Redis or the broker is unavailable: %s", error)
    return json_error(
        ServiceUnavailable(),
        "The task queue is unavailable right now (Redis or the broker did not answer); "
        "nothing was queued. Try again shortly.",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def storage_full(error: Exception) -> tuple[dict, int, dict]:
    """Answer 503 when Redis has no room for new work (``StorageFull``, or Redis itself
    refusing a write: OOM)."""
    current_app.logger.warning("Redis is full: %s", error)
    detail = str(error) if isinstance(error, StorageFull) else "Redis refused a write (OOM)"
    return json_error(
        ServiceUnavailable(),
        f"Storage is full: {detail}. Nothing was queued; try again later.",
        {"Retry-After": str(STORAGE_FULL_RETRY_AFTER_SECONDS)},
    )


def inputs_too_large(error: InputsTooLarge) -> tuple[dict, int, dict]:
    """Answer 413 when a submission's inputs exceed what one may store."""
    return json_error(RequestEntityTooLarge(), str(error))


def publish_unconfirmed(error: PublishUnconfirmed) -> tuple[dict, int, dict]:
    """Answer 503 when the broker did not confirm a publish: the task may be queued."""
    location = url_for("tasks.TaskItem", task_id=error.task_id)
    current_app.logger.warning("The broker did not confirm task %s in time", error.task_id)
    return json_error(
        ServiceUnavailable(),
        f"The task queue did not answer in time, so task {error.task_id} may or may not "
        "have been queued: follow Location to see whether it runs. Resend with the same "
        "Idempotency-Key to be safe.",
        {"Retry-After": str(RETRY_AFTER_SECONDS), "Location": location},
    )


def nested_too_deeply(error: RecursionError) -> tuple[dict, int, dict]:
    """Answer 400 for a body nested beyond what the JSON parser (webargs', Flask's) recurses
    into, rather than a 500."""
    return json_error(BadRequest(), "The JSON body is nested too deeply.")


def idempotency_conflict(error: IdempotencyConflict) -> tuple[dict, int, dict]:
    """Answer 409 when an Idempotency-Key is reused with another request."""
    return json_error(Conflict(), str(error))


def register_error_handlers(app: Flask) -> None:
    """Map HTTP errors and infrastructure failures to JSON errors.

    Registered after ``api.init_app``, so ``http_error`` takes over the Api's handler of
    HTTPException and adds to what it answers.
    """
    app.register_error_handler(HTTPException, http_error)
    for error in (RedisConnectionError, RedisTimeoutError, OperationalError):
        app.register_error_handler(error, queue_unavailable)
    for error in (StorageFull, OutOfMemoryError):
        app.register_error_handler(error, storage_full)
    app.register_error_handler(IdempotencyConflict, idempotency_conflict)
    app.register_error_handler(PublishUnconfirmed, publish_unconfirmed)
    app.register_error_handler(InputsTooLarge, inputs_too_large)
    app.register_error_handler(RecursionError, nested_too_deeply)
