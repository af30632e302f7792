"""Browser sessions kept on the server: signing in opens one (a random id in Redis, named
in the signed cookie), signing out deletes it, so a copied cookie stops working at once."""

from __future__ import annotations

import secrets

import redis

from .keys import session_key


def open_session(client: redis.Redis, owner: str, lifetime_seconds: int) -> str:
    """Record a new session of ``owner``; returns its id, for the cookie."""
    session_id = secrets.token_urlsafe(24)
    client.set(session_key(session_id), owner, ex=lifetime_seconds)
    return session_id


def session_owner(client: redis.Redis, session_id: str) -> str | None:
    """The owner of an open session, or None once it was closed or expired."""
    return client.get(session_key(session_id)) if session_id else None


def close_session(client: redis.Redis, session_id: str) -> None:
    """End a session for every copy of its cookie."""
    if session_id:
        client.delete(session_key(session_id))
