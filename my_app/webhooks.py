"""Signed completion webhooks: when a task with a ``callback_url`` ends, a Celery task of
its own (``my_app.tasks.webhook_task``) POSTs its record there, signed as the Standard
Webhooks specification says (the ``standardwebhooks`` package), retried with
exponential backoff until the receiver answers 2xx.

- **Idempotent.** Every attempt for one task's end carries the same ``webhook-id``
  (``msg_<task id>``), so a receiver that saw it already can drop a repeat.
- **Safe to point anywhere.** The address must be http(s); a private, loopback or
  link-local target is refused at submission (422) and again when connecting, on the
  address actually connected to (requests-hardened pins the address it checked, so a
  DNS answer that changes in between cannot slip through), unless its host is in
  ``WEBHOOK_ALLOWED_HOSTS``. No redirect is followed; the time and the bytes read of an
  answer are bounded.
- **Secrets per owner.** Each owner has a signing secret (``whsec_...``), made on first
  use and rotatable; after a rotation both the new and the previous secret sign for
  ``WEBHOOK_SECRET_GRACE_SECONDS``, so receivers can switch without losing a delivery.
  Secrets are never logged.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests_hardened import Config, Manager
from standardwebhooks.webhooks import Webhook

from .store.keys import owner_webhook_key

#: The event type a task's end is sent as.
EVENT_TYPE = "task.finished"
#: How much of a receiver's answer an attempt keeps, in characters.
KEPT_ANSWER = 200


class WebhookRefused(ValueError):
    """A callback address the service will not call."""


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: when, the HTTP status (None when there was no answer), how
    long it took, and what went wrong."""

    at: str
    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether the receiver took it (a 2xx)."""
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        """As the task's record shows it."""
        return {"at": self.at, "status": self.status, "latency_ms": self.latency_ms,
                "error": self.error}  # fmt: skip


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``WEBHOOK_ALLOWED_HOSTS`` lets a callback reach ``host`` whatever its
    address."""
    return host.lower().rstrip(".") in {name.lower().rstrip(".") for name in allowed}


def checked_callback_url(url: str, allowed: list[str]) -> str:
    """The callback address, or WebhookRefused saying why not: http(s) with a host, and
    one whose every address is public unless the host is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("The callback_url must be an http:// or https:// address.")
    if parts.username or parts.password:
        raise WebhookRefused("The callback_url may not carry a user or password.")
    if host_allowed(parts.hostname, allowed):
        return url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port)}
    except (socket.gaierror, UnicodeError, ValueError) as error:
        raise WebhookRefused(f"The callback_url's host cannot be resolved: {error}.") from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (mapped or ip).is_global:
            raise WebhookRefused(
                f"The callback_url's host {parts.hostname} is a private, loopback or "
                f"link-local address ({ip}); WEBHOOK_ALLOWED_HOSTS may allow it."
            )
    return url


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes them: ``whsec_`` and 24 random
    bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def stored_secrets(client: Any, owner: str) -> dict[str, Any]:
    """The owner's secrets as stored (the current one made now if there is none), in one
    round trip."""
    key = owner_webhook_key(owner)
    pipe = client.pipeline(transaction=False)
    pipe.hsetnx(key, "secret", new_secret())
    pipe.hgetall(key)
    return pipe.execute()[1]


def owner_secrets(client: Any, owner: str) -> list[str]:
    """The owner's signing secrets: the current first, and the previous one while its
    grace lasts."""
    return signing(stored_secrets(client, owner))


def signing(stored: dict[str, Any]) -> list[str]:
    """The secrets that sign now, of those stored."""
    kept = [stored["secret"]]
    until = stored.get("previous_until")
    if stored.get("previous_secret") and until and float(until) > time.time():
        kept.append(stored["previous_secret"])
    return kept


def rotate_secret(client: Any, owner: str, grace_seconds: float) -> dict[str, Any]:
    """Give the owner a new signing secret; the old one signs too for ``grace_seconds``."""
    current = owner_secrets(client, owner)[0]
    client.hset(owner_webhook_key(owner), mapping={
        "secret": new_secret(), "previous_secret": current,
        "previous_until": time.time() + grace_seconds,
        "rotated_at": datetime.now(UTC).isoformat(),
    })  # fmt: skip
    return webhook_settings(client, owner)


def webhook_settings(client: Any, owner: str) -> dict[str, Any]:
    """The owner's signing secrets, and when the previous one stops signing."""
    stored = stored_secrets(client, owner)
    kept = signing(stored)
    return {
        "secret": kept[0],
        "previous_secret": kept[1] if len(kept) > 1 else None,
        "previous_secret_until": (
            datetime.fromtimestamp(float(stored["previous_until"]), UTC).isoformat()
            if len(kept) > 1
            else None
        ),
        "rotated_at": stored.get("rotated_at"),
    }


def signed_request(
    record: dict[str, Any], signing_secrets: list[str], sent_at: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery: the task's record as the event's data, and
    the Standard Webhooks headers, signed with each secret."""
    message_id = f"msg_{record['id']}"
    body = json.dumps(
        {"type": EVENT_TYPE, "timestamp": sent_at.isoformat(), "data": record},
        separators=(",", ":"),
    )
    signatures = " ".join(
        Webhook(secret).sign(message_id, sent_at, body) for secret in signing_secrets
    )
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": "my_app-webhooks/1",
    }
    return body.encode(), headers


def deliver(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allowed: list[str],
    timeout: float,
    max_answer_bytes: int,
) -> Attempt:
    """POST once; the attempt, whatever happened (never raises for the receiver's sake)."""
    started = time.monotonic()
    at = datetime.now(UTC).isoformat()
    host = urlsplit(url).hostname or ""
    manager = Manager(
        Config(
            ip_filter_enable=not host_allowed(host, allowed),
            ip_filter_allow_loopback_ips=False,
            never_redirect=True,
            default_timeout=(timeout, timeout),
        )
    )
    try:
        with manager.get_session() as session:
            session.trust_env = False  # no proxy from the environment: the filter sees the target
            with session.post(url, data=body, headers=headers, stream=True) as answer:
                read = answer.raw.read(max_answer_bytes, decode_content=True)
                latency = int((time.monotonic() - started) * 1000)
                error = None
                if not 200 <= answer.status_code < 300:
                    text = read[:KEPT_ANSWER].decode(errors="replace").strip()
                    error = f"HTTP {answer.status_code}" + (f": {text}" if text else "")
                return Attempt(at, answer.status_code, latency, error)
    except requests.RequestException as error:
        latency = int((time.monotonic() - started) * 1000)
        return Attempt(at, None, latency, f"{type(error).__name__}: {error}"[:KEPT_ANSWER])
