"""Celery tasks: thin wrappers that run a job from ``my_app.jobs`` inside a worker.

Each task carries its job policy, whoever queues it: its ``kind`` (what the API and the
page call it), late acknowledgement with redelivery if its worker process dies (email
too: its sent-once guard keeps a redelivery from sending twice); its time limits come
from ``TASK_TIME_LIMITS`` as task annotations, and its queue from ``task_routes``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime
from typing import Any

from celery import Task, shared_task
from flask import current_app

from . import lifecycle, webhooks
from .jobs.email import SmtpSettings, TransientEmailError, build_message, send_email
from .jobs.report import render_report
from .jobs.slow import count_slowly
from .jobs.thumbnail import make_thumbnails
from .jobs.video import make_video_outputs
from .status import read_task
from .store import artifacts
from .store.ledger import ledger_of
from .worker.job_run import backoff_seconds, job_run, retry_job

REDELIVERED_IF_LOST = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(bind=True, kind="slow", **REDELIVERED_IF_LOST)
def slow_task(self: Task, name: str, seconds: int = 10) -> str:
    """Count ``seconds`` seconds with progress, then greet ``name``."""
    with job_run(self) as run:
        step = current_app.config["SLOW_JOB_STEP_SECONDS"]
        return count_slowly(name, seconds, run.report, step_seconds=step)


@shared_task(bind=True, kind="email", **REDELIVERED_IF_LOST)
def email_task(
    self: Task,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachment_tasks: list[str] | None = None,
) -> dict[str, Any]:
    """Send one email, with the files ``attachment_tasks`` (earlier tasks of its owner,
    such as a report) made attached; transient failures retry with backoff, and it is
    never sent twice."""
    config = current_app.config
    with job_run(self) as run:
        already_sent = run.ledger.recorded_outcome(self.request.id)
        if already_sent is not None:
            return already_sent
        settings = SmtpSettings.from_config(config)
        attachments = run.files_of(attachment_tasks or [])
        message = build_message(settings.default_sender, to, subject, text, html, attachments)
        run.report(0, 1, "sending")
        try:
            outcome = send_email(settings, message)
        except TransientEmailError as error:
            countdown = backoff_seconds(
                self.request.retries,
                base=config["MAIL_RETRY_BACKOFF"],
                cap=config["MAIL_RETRY_BACKOFF_MAX"],
            )
            retry_job(self, error, countdown, max_retries=config["MAIL_MAX_RETRIES"])
        lifecycle.outcome_recorded(run.ledger, self.request.id, outcome)
        run.report(1, 1, "sent")
        return outcome


@shared_task(bind=True, kind="report", **REDELIVERED_IF_LOST)
def report_task(
    self: Task,
    title: str,
    sections: list[dict[str, str]],
    table: dict[str, Any] | None = None,
    as_of: date | None = None,
    image_tasks: list[str] | None = None,
) -> dict[str, Any]:
    """Render a PDF report and keep it as the artifact ``report.pdf``; it shows the
    images that ``image_tasks`` (earlier tasks of its owner, such as thumbnails) made."""
    with job_run(self) as run:
        images = run.files_of(image_tasks or [], media_prefix="image/")
        pdf, pages = render_report(title, sections, table, run.report, as_of=as_of, images=images)
        url = run.save_artifact("report.pdf", pdf)
        return {"url": url, "pages": pages, "size_bytes": len(pdf)}


@shared_task(bind=True, kind="thumbnail", **REDELIVERED_IF_LOST)
def thumbnail_task(
    self: Task, upload_id: str, sizes: list[int], format: str
) -> list[dict[str, Any]]:
    """Make one thumbnail artifact per size from an uploaded image."""
    with job_run(self) as run:
        image = run.store.read(artifacts.upload_path(upload_id))
        if image is None:
            raise LookupError("The uploaded image has expired; upload it again.")
        made = []
        for done, thumbnail in enumerate(make_thumbnails(image, sizes, format), start=1):
            url = run.save_artifact(thumbnail.filename, thumbnail.data)
            made.append(
                {"size": thumbnail.size, "width": thumbnail.width, "height": thumbnail.height,
                 "url": url}
            )  # fmt: skip
            run.report(done, len(sizes), f"{thumbnail.size} px")
        return made


@shared_task(bind=True, kind="video", **REDELIVERED_IF_LOST)
def video_task(
    self: Task,
    upload_id: str,
    preview_height: int = 360,
    preview_format: str = "mp4",
    contact_frames: int = 12,
    filename: str | None = None,
) -> dict[str, Any]:
    """Make a poster, a contact sheet and a web preview of an uploaded video, with its
    metadata; progress per decoded frame. Its files are written in a scratch folder and
    stored only once all are made, so a cancel or a failure leaves nothing behind."""
    with job_run(self) as run, tempfile.TemporaryDirectory(prefix="video-") as work:
        source = run.store.local_path(artifacts.upload_path(upload_id), work)
        if source is None:
            raise LookupError("The uploaded video has expired; upload it again.")
        made = make_video_outputs(
            source,
            work,
            preview_height=preview_height,
            preview_format=preview_format,
            contact_frames=contact_frames,
            on_frame=lambda done, total: run.tick(done, total, "frame"),
        )
        urls = {
            role: run.save_artifact(os.path.basename(path), path)
            for role, path in (
                ("poster", made.poster),
                ("contact_sheet", made.contact_sheet),
                ("preview", made.preview),
            )
        }
        run.report(made.frames_decoded, made.frames_decoded, "done")
        return {"metadata": made.info.as_dict(), "frames_decoded": made.frames_decoded, **urls}


@shared_task(bind=True, recorded=False, ignore_result=True, **REDELIVERED_IF_LOST)
def webhook_task(self: Task, task_id: str) -> None:
    """Tell a finished task's ``callback_url`` that it ended: its record, signed
    (my_app.webhooks), retried with exponential backoff until a 2xx or
    WEBHOOK_MAX_ATTEMPTS; each attempt is kept in the task's record."""
    config = current_app.config
    ledger = ledger_of()
    task = read_task(task_id)
    if task is None or task.webhook is None or task.webhook["state"] != "pending":
        return  # expired, or delivered by an earlier run of this message
    record = {name: value for name, value in task.as_dict().items() if name != "webhook"}
    signing_secrets = webhooks.owner_secrets(ledger.client, task.owner)
    body, headers = webhooks.signed_request(record, signing_secrets, datetime.now(UTC))
    attempt = webhooks.deliver(
        task.webhook["url"], body, headers,
        allowed=config["WEBHOOK_ALLOWED_HOSTS"], timeout=config["WEBHOOK_TIMEOUT_SECONDS"],
        max_answer_bytes=config["WEBHOOK_MAX_ANSWER_BYTES"],
    )  # fmt: skip
    last = self.request.retries + 1 >= config["WEBHOOK_MAX_ATTEMPTS"]
    state = "delivered" if attempt.delivered else "failed" if last else "pending"
    lifecycle.webhook_attempted(ledger, task_id, attempt.as_dict(), state)
    if state == "pending":
        countdown = backoff_seconds(
            self.request.retries,
            base=config["WEBHOOK_RETRY_BACKOFF"],
            cap=config["WEBHOOK_RETRY_BACKOFF_MAX"],
        )
        raise self.retry(countdown=countdown, max_retries=config["WEBHOOK_MAX_ATTEMPTS"])
