"""The development mail sink: every message it receives becomes a .eml file."""

from __future__ import annotations

import smtplib
from email import message_from_bytes, policy

from devservers.embedded_redis import free_port
from devservers.mail_sink import start_sink


def test_the_sink_keeps_each_message_as_an_eml_file(tmp_path):
    port = free_port()
    sink = start_sink(tmp_path, port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.sendmail("me@x.io", ["ada@example.com"], b"Subject: Hi\r\n\r\nHello Ada\r\n")
    finally:
        sink.stop()
    [saved] = list(tmp_path.glob("*.eml"))
    message = message_from_bytes(saved.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Hi"
    assert message["X-Envelope-To"] == "ada@example.com"
    assert message.get_content().strip() == "Hello Ada"
