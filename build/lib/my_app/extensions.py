"""Extension objects, created unbound here and given the app in the factory."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Request, Response, current_app
from flask.sessions import SessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from flask_talisman import Talisman
from redis.retry import Retry

from .auth import current_caller
from .store import redis_connections
from .store.ledger import Ledger

api = Api()


def rate_limit_key() -> str:
    """Whose budget a request spends: its API key's owner, or, for the anonymous owner of
    a development machine, the client's address (behind TRUSTED_PROXIES, the address
    X-Forwarded-For names)."""
    caller = current_caller()
    if caller.signed_in_by == "anonymous":
        return f"address:{get_remote_address()}"
    return f"owner:{caller.owner}"


#: Rate limits counted in Redis (RATELIMIT_STORAGE_URI, by default REDIS_URL).
limiter = Limiter(key_func=rate_limit_key)

#: Security headers on every response (Content-Security-Policy, nosniff, frame-ancestors,
#: Referrer-Policy, and HSTS over HTTPS in production); see my_app.ops.security_headers.
talisman = Talisman()


class NoSessions(SessionInterface):
    """The service keeps no cookie sessions: skip Flask's per-request cookie signing setup."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        """Every request gets the null session."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to save."""


class RedisClient:
    """The app's clients of the Redis at ``REDIS_URL`` (ledger, artifacts, uploads), and
    the ledger built on them (``app.extensions["ledger"]``).

    ``client`` answers text (the ledger, idempotency keys); ``binary`` answers bytes
    (artifacts and uploads). Celery keeps its own connections for the broker and results.
    """

    def init_app(self, app: Flask, retry: Retry | None = None) -> None:
        """Create the app's pools and its ledger; connecting waits for the first command.

        Each pool holds at most ``REDIS_MAX_CONNECTIONS`` connections, and a request that
        finds them all busy waits for one (up to ``REDIS_SOCKET_TIMEOUT``, then 503)
        instead of opening more: a thousand event streams reading at once share a few
        connections, so a web process's connections stay bounded however busy it is.
        ``REDIS_URL`` may name Redis Sentinels instead (my_app.store.redis_connections).
        Without ``retry`` a command fails at the first connection error (the web's 503);
        a worker passes one (my_app.worker.outages), given to every connection.
        """
        for extension, decode_responses in (("redis", True), ("redis_binary", False)):
            options: dict[str, Any] = {"retry": retry} if retry is not None else {}
            app.extensions[extension] = redis_connections.redis_client(
                app.config["REDIS_URL"],
                app.config["REDIS_SENTINEL_SERVICE"],
                max_connections=app.config["REDIS_MAX_CONNECTIONS"],
                timeout=app.config["REDIS_SOCKET_TIMEOUT"],
                socket_connect_timeout=app.config["REDIS_CONNECT_TIMEOUT"],
                socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
                health_check_interval=30,
                decode_responses=decode_responses,
                client_name=f"my_app-{extension}",
                **options,
            )
        app.extensions["ledger"] = Ledger(
            app.extensions["redis"], app.extensions["redis_binary"],
            app.config["RESULT_EXPIRES"], app.extensions["celery"].backend,
        )  # fmt: skip

    @property
    def client(self) -> redis.Redis:
        """The current app's text client."""
        return current_app.extensions["redis"]

    @property
    def binary(self) -> redis.Redis:
        """The current app's bytes client."""
        return current_app.extensions["redis_binary"]


redis_client = RedisClient()
