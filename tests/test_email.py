"""Email over real SMTP (aiosmtpd): exact delivery, retries, permanent failures, sent once."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from celery.signals import task_postrun
from support import RecordingSmtpHandler, wait_for_state

from my_app.jobs.email import (
    PermanentEmailError,
    SmtpSettings,
    TransientEmailError,
    build_message,
    send_email,
)
from my_app.tasks import email_task

EMAIL = {
    "to": ["ada@example.com", "grace@example.org"],
    "subject": "Your report is ready",
    "text": "Hello,\nyour report is ready.",
    "html": "<p>Hello,<br>your report is <b>ready</b>.</p>",
}


def received(envelope):
    return message_from_bytes(envelope.original_content, policy=policy.default)


def test_send_email_hands_the_exact_message_to_the_server(smtp_server):
    settings = SmtpSettings(server="127.0.0.1", port=smtp_server.port, default_sender="me@x.io")
    message = build_message(settings.default_sender, **EMAIL)
    outcome = send_email(settings, message)
    assert outcome == {
        "message_id": message["Message-ID"],
        "accepted": EMAIL["to"],
        "refused": {},
    }
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "me@x.io"
    assert envelope.rcpt_tos == EMAIL["to"]
    mail = received(envelope)
    assert mail["Subject"] == "Your report is ready"
    assert mail["To"] == "ada@example.com, grace@example.org"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == EMAIL["text"]
    assert "<b>ready</b>" in mail.get_body(("html",)).get_content()


def test_an_unreachable_server_is_transient():
    from devservers.embedded_redis import free_port

    settings = SmtpSettings(server="127.0.0.1", port=free_port(), timeout=2)
    with pytest.raises(TransientEmailError, match="Could not reach"):
        send_email(settings, build_message("me@x.io", ["a@example.com"], "s", "t"))


def test_a_5xx_answer_is_permanent(smtp_server):
    smtp_server.data_reply = "554 5.7.1 Message rejected as spam"
    settings = SmtpSettings(server="127.0.0.1", port=smtp_server.port)
    with pytest.raises(PermanentEmailError, match=r"554 5\.7\.1 Message rejected as spam"):
        send_email(settings, build_message("me@x.io", ["a@example.com"], "s", "t"))


def test_the_email_job_delivers_through_the_worker(client, smtp_server, app):
    response = client.post("/api/tasks/email", json=EMAIL)
    assert response.status_code == 202
    task = wait_for_state(client, response.headers["Location"], {"SUCCESS"})
    assert task["result"]["accepted"] == EMAIL["to"]
    assert task["result"]["refused"] == {}
    [envelope] = smtp_server.envelopes
    assert received(envelope)["Message-ID"] == task["result"]["message_id"]
    assert envelope.mail_from == app.config["MAIL_DEFAULT_SENDER"]


def test_smtp_credentials_never_enter_the_task_message(client, smtp_server, app):
    app.config["MAIL_PASSWORD"] = "s3cret-password"
    try:
        task = client.post("/api/tasks/email", json=EMAIL).get_json()
        # The server offers no AUTH, so logging in fails: the password was read, not sent.
        failed = wait_for_state(client, task["links"]["self"], {"FAILURE", "SUCCESS"})
    finally:
        app.config["MAIL_PASSWORD"] = None
    assert "s3cret" not in str(task["inputs"]) + str(failed)
    assert set(task["inputs"]) == {"to", "subject", "text", "html"}


def test_a_down_server_means_retry_then_success_once_it_is_up(client, app):
    handler = RecordingSmtpHandler()
    from devservers.embedded_redis import free_port

    port = free_port()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    url = client.post("/api/tasks/email", json=EMAIL).headers["Location"]
    retrying = wait_for_state(client, url, {"RETRY"})
    assert "Could not reach 127.0.0.1" in retrying["error"]["message"]
    assert retrying["retry_at"] is not None
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        done = wait_for_state(client, url, {"SUCCESS"}, timeout=60)
    finally:
        controller.stop()
        app.config.update(MAIL_PORT=8025)
    assert len(handler.envelopes) == 1
    assert done["result"]["accepted"] == EMAIL["to"]


def test_a_5xx_ends_in_failure_without_retry(client, smtp_server):
    smtp_server.data_reply = "550 5.1.1 Mailbox does not exist"
    url = client.post("/api/tasks/email", json=EMAIL).headers["Location"]
    task = wait_for_state(client, url, {"FAILURE"})
    assert task["error"]["type"] == "PermanentEmailError"
    assert "550 5.1.1 Mailbox does not exist" in task["error"]["message"]
    assert task["retry_at"] is None
    assert smtp_server.data_attempts == 1


def test_a_redelivered_message_is_not_sent_twice(client, smtp_server, app):
    task = client.post("/api/tasks/email", json=EMAIL).get_json()
    first = wait_for_state(client, task["links"]["self"], {"SUCCESS"})
    ran_again = threading.Event()

    def on_postrun(task_id, **kwargs):
        if task_id == task["id"]:
            ran_again.set()

    task_postrun.connect(on_postrun, weak=False)
    try:
        # The broker hands the same message out again (as after a lost acknowledgement).
        email_task.apply_async(kwargs=task["inputs"], task_id=task["id"])
        assert ran_again.wait(timeout=30)
    finally:
        task_postrun.disconnect(on_postrun)
    again = client.get(task["links"]["self"]).get_json()
    assert again["state"] == "SUCCESS"
    assert again["result"] == first["result"]
    assert len(smtp_server.envelopes) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EMAIL, "to": ["not-an-address"]}, "to"),
        ({**EMAIL, "to": []}, "to"),
        ({**EMAIL, "to": [f"u{i}@example.com" for i in range(51)]}, "to"),
        ({**EMAIL, "subject": "two\nlines"}, "subject"),
        ({**EMAIL, "subject": "a trailing newline\n"}, "subject"),
        # Line breaks of str.splitlines(), which the email package refuses in a header: they
        # were accepted (202) and failed in the worker.
        ({**EMAIL, "subject": "line\u2028separator"}, "subject"),
        ({**EMAIL, "subject": "next\x85line"}, "subject"),
        ({**EMAIL, "subject": "vertical\x0btab"}, "subject"),
        ({**EMAIL, "subject": "form\x0cfeed"}, "subject"),
        ({**EMAIL, "subject": "paragraph\u2029separator"}, "subject"),
        ({key: value for key, value in EMAIL.items() if key != "text"}, "text"),
    ],
)
def test_invalid_emails_are_422_per_field(client, body, field):
    response = client.post("/api/tasks/email", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]
