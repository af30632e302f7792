"""Extension objects, created unbound here and given the app in the factory."""

from __future__ import annotations

import flask_smorest
import redis
from flask import Flask, Request, Response, current_app
from flask.sessions import SessionInterface, SessionMixin
from flask_smorest.pagination import PaginationMetadataSchema
from werkzeug.exceptions import HTTPException


class Api(flask_smorest.Api):
    """flask-smorest's Api, with a message and the protocol headers on every error."""

    def handle_http_exception(self, error: HTTPException) -> tuple[dict, int, dict]:
        """The JSON error body: ``code``, ``status``, ``message`` and, if any, ``errors``."""
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description)
        # Werkzeug's own headers, such as a 405's Allow, minus its HTML content type.
        protocol_headers = {
            name: value for name, value in error.get_headers() if name != "Content-Type"
        }
        return payload, code, {**protocol_headers, **(headers or {})}

    def _register_pagination_header(self) -> None:
        # X-Pagination carries JSON; OpenAPI says so with `content`, not a bare `schema`.
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata",
                "content": {"application/json": {"schema": PaginationMetadataSchema}},
            },
            lazy=True,
        )


api = Api()


class NoSessions(SessionInterface):
    """The service keeps no cookie sessions: skip Flask's per-request cookie signing setup."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        """Every request gets the null session."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to save."""


class RedisClient:
    """The app's clients of the Redis at ``REDIS_URL``.

    ``client`` answers text (the ledger, idempotency keys, event streams); ``binary``
    answers bytes (artifacts and uploads). Celery keeps its own connections.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's pools; connecting waits for the first command."""
        for extension, decode_responses in (("redis", True), ("redis_binary", False)):
            app.extensions[extension] = redis.Redis.from_url(
                app.config["REDIS_URL"],
                socket_connect_timeout=app.config["REDIS_CONNECT_TIMEOUT"],
                socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
                health_check_interval=30,
                decode_responses=decode_responses,
            )

    @property
    def client(self) -> redis.Redis:
        """The current app's text client."""
        return current_app.extensions["redis"]

    @property
    def binary(self) -> redis.Redis:
        """The current app's bytes client."""
        return current_app.extensions["redis_binary"]


redis_client = RedisClient()
