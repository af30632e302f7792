"""Logs: one JSON object per line with ``LOG_FORMAT=json`` (python-json-logger), from the
web server and the worker alike, each carrying the ``request_id`` of the HTTP request
that led to it and, in a task, the ``task_id``.

The request id is the incoming ``X-Request-ID`` (or a new one), answered back in the same
header. It travels to the worker in the task message's headers, through Celery's
``before_task_publish`` signal, so one job can be followed from the request that queued it
through every line its worker logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from celery import current_app as current_celery_app
from celery import current_task
from celery.signals import after_setup_logger, after_setup_task_logger, before_task_publish
from flask import Flask, Response, current_app, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

#: A request id we accept from a client: short, and nothing that could forge a log line.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``task_id`` to every record, where there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drop it."""
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "task_id"):
            task = current_task
            record.task_id = task.request.id if task and task.request.id else None
        return True


def current_request_id() -> str | None:
    """The request id of the current HTTP request, or of the task being run."""
    if has_request_context():
        return g.get("request_id")
    task = current_task
    if task and task.request.id:
        return task.request.get("request_id")
    return None


def json_handler(handler: logging.Handler | None = None) -> logging.Handler:
    """``handler`` (a new stderr handler by default) writing JSON lines with context."""
    handler = handler or logging.StreamHandler()
    handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level"}))
    handler.addFilter(ContextFilter())
    return handler


def init_app(app: Flask) -> None:
    """Give each request an id and, with ``LOG_FORMAT=json``, log JSON lines and one
    access line per request."""
    app.before_request(assign_request_id)
    app.after_request(answer_request_id)
    if app.config["LOG_FORMAT"] == "json":
        root = logging.getLogger()
        if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
            root.addHandler(json_handler())
        root.setLevel(app.config["LOG_LEVEL"])
        app.logger.handlers.clear()  # Flask's default handler would print plain text too


def assign_request_id() -> None:
    """The client's ``X-Request-ID`` when it is well formed, else a new one."""
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def answer_request_id(response: Response) -> Response:
    """Send the request id back, and log the request when logging JSON."""
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if current_app.config["LOG_FORMAT"] == "json":
        current_app.logger.info(
            "%s %s %s", request.method, request.path, response.status_code,
            extra={"method": request.method, "path": request.path,
                   "status": response.status_code,
                   "duration_ms": round((time.perf_counter() - g.request_started) * 1000, 2)},
        )  # fmt: skip
    return response


@before_task_publish.connect
def carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Put the current request id (or the running task's) in the message's headers."""
    request_id = current_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@after_setup_logger.connect
@after_setup_task_logger.connect
def worker_logs_json(logger: logging.Logger, **_: Any) -> None:
    """The worker's own loggers (set up by Celery) write JSON too when its Flask app's
    ``LOG_FORMAT`` is json."""
    flask_app = getattr(current_celery_app.Task, "flask_app", None)
    if flask_app is not None and flask_app.config["LOG_FORMAT"] == "json":
        for handler in logger.handlers:
            json_handler(handler)
