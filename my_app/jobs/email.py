"""Sending one email over SMTP (stdlib smtplib), sorting failures into transient and permanent."""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any


class TransientEmailError(Exception):
    """Worth retrying: the server was unreachable, timed out, or answered 4xx."""


class PermanentEmailError(Exception):
    """Not worth retrying: the server answered 5xx or refused every recipient."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the SMTP server; read in the worker, never sent in a message."""

    server: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0
    default_sender: str = "jobs@localhost"

    @classmethod
    def from_config(cls, config: Any) -> SmtpSettings:
        """The MAIL_* settings of a Flask config."""
        if not config.get("MAIL_SERVER"):
            raise PermanentEmailError("MAIL_SERVER is not configured.")
        return cls(
            server=config["MAIL_SERVER"],
            port=int(config["MAIL_PORT"]),
            username=config.get("MAIL_USERNAME") or None,
            password=config.get("MAIL_PASSWORD") or None,
            use_tls=bool(config.get("MAIL_USE_TLS")),
            use_ssl=bool(config.get("MAIL_USE_SSL")),
            timeout=float(config.get("MAIL_TIMEOUT", 30)),
            default_sender=config.get("MAIL_DEFAULT_SENDER") or "jobs@localhost",
        )


def build_message(
    sender: str,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachments: list[tuple[str, bytes]] = (),
) -> EmailMessage:
    """A MIME message: plain text, with an HTML alternative when given, and files
    attached (name, bytes). More than ``MAX_ATTACHMENT_BYTES`` of files fails for good."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    if sum(len(data) for _, data in attachments) > MAX_ATTACHMENT_BYTES:
        raise PermanentEmailError(
            f"The attachments are larger than the {MAX_ATTACHMENT_BYTES} bytes an email takes."
        )
    for name, data in attachments:
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, subtype = media_type.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


#: The most bytes of files one email carries (most servers refuse 25 MB and more).
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


def send_email(settings: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    """Hand ``message`` to the SMTP server; returns who was accepted and who refused.

    Raises TransientEmailError or PermanentEmailError; the server's own words are kept.
    """
    recipients = [address.strip() for address in message["To"].split(",")]
    try:
        with open_connection(settings) as smtp:
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        raise PermanentEmailError(
            "Every recipient was refused: " + describe_refusals(error.recipients)
        ) from None
    except smtplib.SMTPResponseException as error:
        reply = f"{error.smtp_code} {decode(error.smtp_error)}"
        if 400 <= error.smtp_code < 500:
            raise TransientEmailError(f"SMTP server answered {reply}") from None
        raise PermanentEmailError(f"SMTP server answered {reply}") from None
    except (OSError, smtplib.SMTPException) as error:
        # Refused or dropped connections, timeouts, TLS trouble: try again later.
        raise TransientEmailError(
            f"Could not reach {settings.server}:{settings.port}: {error}"
        ) from None
    refusals = {address: f"{code} {decode(reply)}" for address, (code, reply) in refused.items()}
    return {
        "message_id": message["Message-ID"],
        "accepted": [address for address in recipients if address not in refusals],
        "refused": refusals,
    }


def open_connection(settings: SmtpSettings) -> smtplib.SMTP:
    """A logged-in SMTP connection as the settings say (SSL, STARTTLS, or plain)."""
    if settings.use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.server, settings.port, timeout=settings.timeout,
            context=ssl.create_default_context(),
        )  # fmt: skip
    else:
        smtp = smtplib.SMTP(settings.server, settings.port, timeout=settings.timeout)
    try:
        if settings.use_tls and not settings.use_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def describe_refusals(refusals: dict[str, tuple[int, bytes]]) -> str:
    """``a@x: 550 no such user; b@y: ...``."""
    return "; ".join(
        f"{address}: {code} {decode(reply)}" for address, (code, reply) in refusals.items()
    )


def decode(reply: bytes | str) -> str:
    """An SMTP reply as text."""
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
