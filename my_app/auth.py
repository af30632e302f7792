"""Who is calling: an API key (``Authorization: Bearer``), the browser's signed session
cookie, or, with ``API_KEYS`` unset, the one anonymous owner of a development machine.

Each key is an owner: the tasks it queues are its own. A key with the role ``admin``
sees every owner's tasks and is exempt from the quotas.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, current_app, g, redirect, request, session, url_for
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from .store.ledger import ledger_of
from .store.sessions import close_session, open_session, session_owner

#: Endpoints anyone may reach: the docs, static files, health, and signing in itself.
#: (``/metrics`` checks its own token or admin key.)
PUBLIC_ENDPOINTS = frozenset({"static", "health.healthz", "ui.sign_in_page", "metrics.metrics"})
PUBLIC_BLUEPRINTS = frozenset({"api-docs"})
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: GET endpoints that queue a job, which a cookie may call only from this site.
STATE_CHANGING_GETS = frozenset({"run_task.run_task"})
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its name is the owner of what it queues."""

    name: str
    secret: str = field(repr=False)
    admin: bool = False


@dataclass(frozen=True)
class Caller:
    """Who the current request acts for, and how that was established."""

    owner: str
    admin: bool
    #: "key" (a Bearer header), "session" (the browser's cookie) or "anonymous".
    signed_in_by: str


class AuthenticationError(Unauthorized):
    """A 401 that tells the client how to authenticate (RFC 6750's WWW-Authenticate)."""

    def __init__(self, description: str) -> None:
        super().__init__(description, www_authenticate=WWWAuthenticate("Bearer", {"realm": "jobs"}))


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Parse ``name:secret`` or ``name:secret:admin`` entries, separated by commas or
    lines; blank lines and ``#`` comments are skipped. Errors never quote a secret."""
    keys: list[ApiKey] = []
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, _, rest = entry.partition(":")
        secret, _, role = rest.partition(":")
        if not name or not secret or role not in ("", ADMIN_ROLE):
            raise ValueError(
                f"API key entry {number} ({name or '?'}) must be name:secret or name:secret:admin"
            )
        keys.append(ApiKey(name.strip(), secret.strip(), admin=role == ADMIN_ROLE))
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise ValueError("API key names must be unique: each name is an owner")
    return tuple(keys)


def load_api_keys(config: dict) -> tuple[ApiKey, ...]:
    """The keys from ``API_KEYS`` and the file at ``API_KEYS_FILE``, if either is set."""
    text = config.get("API_KEYS") or ""
    if config.get("API_KEYS_FILE"):
        text += "\n" + Path(config["API_KEYS_FILE"]).read_text()
    return parse_api_keys(text)


def init_app(app: Flask) -> None:
    """Load the keys and require a caller on every request but the public ones."""
    app.extensions["api_keys"] = load_api_keys(app.config)
    app.before_request(require_caller)


def keys_required() -> bool:
    """Whether API keys are configured (otherwise every caller is anonymous)."""
    return bool(current_app.extensions["api_keys"])


def key_for_secret(secret: str) -> ApiKey | None:
    """The key with this secret, compared in constant time against every key."""
    found = None
    for key in current_app.extensions["api_keys"]:
        if hmac.compare_digest(key.secret.encode(), secret.encode()):
            found = key
    return found


def key_named(name: str) -> ApiKey | None:
    """The configured key called ``name``."""
    return next((k for k in current_app.extensions["api_keys"] if k.name == name), None)


def session_proof(key: ApiKey) -> str:
    """A digest of the key's secret kept in the session, so changing a key's secret signs
    out the browsers that signed in with it."""
    secret_key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret_key, key.secret.encode(), hashlib.sha256).hexdigest()[:32]


def resolve_caller() -> Caller | None:
    """Who the request is from, or None when keys are required and none was given."""
    if not keys_required():
        return Caller(current_app.config["DEFAULT_OWNER"], admin=False, signed_in_by="anonymous")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        key = key_for_secret(token.strip())
        return Caller(key.name, key.admin, "key") if key else None
    key = key_named(session.get("key", ""))
    if (
        key
        and hmac.compare_digest(session.get("proof", ""), session_proof(key))
        and session_owner(ledger_of().client, session.get("sid", "")) == key.name
    ):
        return Caller(key.name, key.admin, "session")
    return None


def current_caller() -> Caller:
    """The caller of the current request (resolved once per request)."""
    if "caller" not in g:
        caller = resolve_caller()
        if caller is None:
            raise AuthenticationError(
                "Authentication required: send Authorization: Bearer <your API key>."
            )
        g.caller = caller
    return g.caller


def is_public_endpoint() -> bool:
    """Whether the current endpoint is open to anyone."""
    return request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS


def same_origin() -> bool:
    """Whether a browser says this request comes from our own pages (or from its
    address bar: ``Sec-Fetch-Site: none``).

    Browsers send ``Origin`` on every cross-origin request and on same-origin POST,
    PUT, PATCH and DELETE; only its host is compared, because a TLS-terminating proxy
    makes the scheme we see differ from the browser's. A GET carries no ``Origin``, so
    there ``Sec-Fetch-Site`` decides, and a request without either is refused."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return request.headers.get("Sec-Fetch-Site") in ("same-origin", "none")
    return urlsplit(origin).netloc == request.host


def require_caller():  # noqa: ANN201 (None or a response, as before_request allows)
    """Refuse a request without a valid key or session (401, or the sign-in page for a
    browser's page view) and a cookie-authenticated change from another site (403)."""
    if request.endpoint is None or is_public_endpoint():
        return None
    try:
        caller = current_caller()
    except AuthenticationError:
        if request.blueprint == "ui" and request.method == "GET":
            return redirect(url_for("ui.sign_in_page", next=request.full_path.rstrip("?")))
        raise
    if caller.signed_in_by == "session" and changes_state() and not same_origin():
        raise Forbidden("Cross-site request refused: this cookie only works from this site.")
    return None


def changes_state() -> bool:
    """Whether the request may change something: a POST, PUT, PATCH or DELETE, or a GET
    of an endpoint that queues a job (the quick start's ``/run-task/<name>``)."""
    return request.method in STATE_CHANGING_METHODS or request.endpoint in STATE_CHANGING_GETS


def sign_in(key: ApiKey) -> None:
    """Open a session for ``key`` on the server and name it in the browser's signed,
    HttpOnly, SameSite cookie."""
    session.clear()
    lifetime = int(current_app.permanent_session_lifetime.total_seconds())
    session["sid"] = open_session(ledger_of().client, key.name, lifetime)
    session["key"] = key.name
    session["proof"] = session_proof(key)


def sign_out() -> None:
    """Close the session on the server (every copy of the cookie stops working), and
    forget it in the browser."""
    close_session(ledger_of().client, session.get("sid", ""))
    session.clear()
