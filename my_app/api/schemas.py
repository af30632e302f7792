"""Marshmallow schemas of the task API: what each job accepts and what a task looks like."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from flask_smorest.error_handler import ErrorSchema
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..jobs.report import unsupported_characters
from ..jobs.video import PREVIEW_FORMATS, PREVIEW_HEIGHTS
from ..records import TaskState, TimelineEvent
from ..settings import SLOW_JOB_MAX_SECONDS

__all__ = ["ErrorSchema"]  # every error answer, as flask-smorest shapes it

MAX_SECONDS = SLOW_JOB_MAX_SECONDS
#: A state as the API names it (a task's, a workflow's or a step's).
A_TASK_STATE = validate.OneOf([state.value for state in TaskState])
#: The documented limit of ``seconds``, per role, as ``quotas.check_job_seconds`` holds it.
SECONDS_LIMITS = (
    f"At most {SLOW_JOB_MAX_SECONDS} with an admin key; with any other key (or none) at most "
    "the server's MAX_JOB_SECONDS (600 unless set otherwise), 422 beyond."
)
# A report renders at about 50,000 characters a second: cap it at a few seconds' work.
MAX_SECTION_CHARS = 20_000
MAX_REPORT_CHARS = 200_000


def timestamp(description: str | None = None, **kwargs: object) -> fields.String:
    """An ISO 8601 UTC time, kept as the string the ledger and Celery store."""
    metadata = {"format": "date-time"}
    if description:
        metadata["description"] = description
    return fields.String(dump_only=True, metadata=metadata, **kwargs)


class SlowJobSchema(Schema):
    """The seed job: count ``seconds`` seconds, then greet ``name``."""

    name = fields.String(required=True, validate=validate.Length(1, 200))
    seconds = fields.Integer(
        load_default=10,
        strict=True,
        validate=validate.Range(0, MAX_SECONDS),
        metadata={"description": f"How long the job counts. {SECONDS_LIMITS}"},
    )


class RunTaskQueryArgsSchema(Schema):
    """Query arguments of ``/run-task/<name>``."""

    seconds = fields.Integer(
        load_default=10,
        validate=validate.Range(0, MAX_SECONDS),
        metadata={"description": f"How long the job counts. {SECONDS_LIMITS}"},
    )


class ProgressSchema(Schema):
    """How far a task got."""

    current = fields.Integer(required=True)
    total = fields.Integer(required=True)
    percent = fields.Integer(required=True)
    message = fields.String()
    eta_seconds = fields.Float(
        metadata={
            "description": "Seconds until it is done, from its pace so far (while in PROGRESS)"
        }
    )


class TaskErrorSchema(Schema):
    """Why a task failed or stopped (never a traceback)."""

    type = fields.String(required=True)
    message = fields.String(required=True)


class TaskLinksSchema(Schema):
    """Where to go next from a task."""

    self = fields.String(required=True)
    events = fields.String(required=True)
    cancel = fields.String(required=True)
    retry = fields.String(required=True)
    retry_of = fields.String(allow_none=True)
    retried_by = fields.String()
    waiting_for = fields.String()
    workflow = fields.String()
    schedule = fields.String()
    purge = fields.String()
    artifacts = fields.Dict(keys=fields.String(), values=fields.String())


class TimelineEntrySchema(Schema):
    """One transition of a task, as its timeline keeps it."""

    at = timestamp(required=True)
    event = fields.String(
        dump_only=True,
        required=True,
        validate=validate.OneOf([event.value for event in TimelineEvent]),
        metadata={"description": "queued, received, started, progress (25, 50 and 75 %), "
                  "retry, cancel_requested or finished"},
    )  # fmt: skip
    attempt = fields.Integer(
        dump_only=True,
        metadata={"description": "The attempt it belongs to, from 1 (0: before any start)"},
    )
    worker = fields.String(dump_only=True, allow_none=True)
    detail = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The queue, the progress, the error, the final state"},
    )


class WebhookAttemptSchema(Schema):
    """One delivery attempt of a task's webhook."""

    at = timestamp(required=True)
    status = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "None: no answer"}
    )
    latency_ms = fields.Integer(dump_only=True)
    error = fields.String(dump_only=True, allow_none=True)


class WebhookSchema(Schema):
    """Where a task's end is sent, and how that went."""

    url = fields.String(dump_only=True, required=True)
    state = fields.String(
        dump_only=True, required=True, validate=validate.OneOf(["pending", "delivered", "failed"])
    )
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), dump_only=True)


class TaskSchema(Schema):
    """A submitted job and everything known about it."""

    id = fields.String(dump_only=True, required=True)
    kind = fields.String(dump_only=True, required=True)
    owner = fields.String(
        dump_only=True, metadata={"description": "The API key that queued it (or the default)"}
    )
    state = fields.String(dump_only=True, required=True, validate=A_TASK_STATE)
    progress = fields.Nested(ProgressSchema, dump_only=True, allow_none=True)
    result = fields.Raw(dump_only=True, allow_none=True)
    error = fields.Nested(TaskErrorSchema, dump_only=True, allow_none=True)
    inputs = fields.Dict(dump_only=True)
    queue = fields.String(dump_only=True, allow_none=True)
    worker = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "The worker that took it"}
    )
    submitted_at = timestamp(required=True)
    received_at = timestamp(allow_none=True)
    attempts = fields.Integer(
        dump_only=True,
        metadata={"description": "How many times it has started (retries, redeliveries)"},
    )
    started_at = timestamp("When the current attempt started", allow_none=True)
    finished_at = timestamp(allow_none=True)
    retry_at = timestamp(allow_none=True)
    retried_by = fields.String(
        dump_only=True, metadata={"description": "The task that ran it again"}
    )
    dead_letter = fields.Boolean(
        dump_only=True,
        metadata={"description": "A failure after its retries ran out, not run again"},
    )
    warning = fields.String(
        dump_only=True,
        metadata={"description": "Something the caller should know: its worker is gone"},
    )
    waiting_for = fields.String(
        dump_only=True,
        metadata={
            "description": "The canvas step this one waits for (a chain's previous step, a "
            "chord's group): it is queued when that one ends"
        },
    )
    workflow = fields.String(
        dump_only=True,
        metadata={"description": "The workflow (a Celery canvas) this task is a step of"},
    )
    schedule = fields.String(
        dump_only=True, metadata={"description": "The schedule that queued this run"}
    )
    run_at = timestamp("When a one-off job was asked to run (it is QUEUED, held, until then)")
    timeline = fields.List(
        fields.Nested(TimelineEntrySchema),
        dump_only=True,
        metadata={"description": "Every transition, oldest first (the last 50)"},
    )
    webhook = fields.Nested(
        WebhookSchema,
        dump_only=True,
        metadata={"description": "Its callback_url, and each delivery attempt (signed "
                  "with Standard Webhooks, retried with backoff)"},
    )  # fmt: skip
    links = fields.Nested(TaskLinksSchema, dump_only=True, required=True)


class TaskSummarySchema(TaskSchema):
    """A task as a list or the feed shows it: all but its inputs, which may be a megabyte,
    and its timeline (the task's own record carries them), so a page stays small
    whatever they are."""

    class Meta:
        exclude = ("inputs", "timeline")


class TaskQueryArgsSchema(Schema):
    """Filters of the task list (and of the bulk actions)."""

    state = fields.String(validate=A_TASK_STATE)
    kind = fields.String(validate=validate.Length(1, 50))
    schedule = fields.String(
        validate=validate.Length(1, 64), metadata={"description": "Runs of this schedule"}
    )
    dead_letter = fields.Boolean(
        metadata={
            "description": "true: the dead letters, failures after their retries ran out "
            "and not run again"
        }
    )
    submitted_after = fields.AwareDateTime(metadata={"description": "Queued at or after"})
    submitted_before = fields.AwareDateTime(metadata={"description": "Queued before"})
    owner = fields.String(
        validate=validate.Length(1, 200), metadata={"description": "An owner's (admins)"}
    )


class BulkActionSchema(TaskQueryArgsSchema):
    """Which tasks a bulk action takes: the list's filters, and how many at most."""

    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, 1000),
        metadata={
            "description": "The most tasks acted on by this call (1 to 1000); "
            "skipped ones do not count"
        },
    )


class SkippedTaskSchema(Schema):
    """A task a bulk action left alone, and why."""

    id = fields.String(required=True)
    reason = fields.String(required=True)


class BulkResultSchema(Schema):
    """What a bulk action did."""

    acted_on = fields.Integer(required=True, metadata={"description": "How many"})
    task_ids = fields.List(
        fields.String(), required=True,
        metadata={"description": "The tasks cancelled, or the new tasks queued by a retry"},
    )  # fmt: skip
    skipped = fields.List(
        fields.Nested(SkippedTaskSchema), required=True,
        metadata={"description": "The first 100 skipped, with why"},
    )  # fmt: skip
    skipped_count = fields.Integer(required=True, metadata={"description": "How many skipped"})
    more = fields.Boolean(
        required=True,
        metadata={"description": "More tasks to act on match: call again for them"},
    )


class SubmissionOptionsSchema(Schema):
    """How a submission runs: when (now, at a time, or after a delay), and whom to tell
    when it ends."""

    callback_url = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2000),
        metadata={
            "description": "POST the task's record here, signed (Standard Webhooks), when "
            "it ends; default: your key's WEBHOOK_DEFAULT_URLS entry"
        },
    )

    run_at = fields.AwareDateTime(
        metadata={
            "description": "Hold the job until this time (ISO 8601 with a UTC offset); "
            "beat queues it then, and it survives restarts"
        }
    )
    countdown = fields.Float(
        validate=validate.Range(min=0, max=10**9),
        metadata={"description": "Hold the job this many seconds", "format": "double"},
    )

    @validates_schema
    def one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        """At most one of run_at and countdown."""
        if "run_at" in data and "countdown" in data:
            raise ValidationError("Give run_at or countdown, not both.", "countdown")


class RunTaskAcceptedSchema(Schema):
    """The seed route's answer to a submission."""

    message = fields.String(required=True)
    task_id = fields.String(required=True)
    status_url = fields.String(required=True)


class TaskStatusSchema(Schema):
    """The seed route's view of a task."""

    task_id = fields.String(required=True)
    status = fields.String(required=True, validate=A_TASK_STATE)
    progress = fields.Nested(ProgressSchema, allow_none=True)
    result = fields.Raw(allow_none=True)
    error = fields.Nested(TaskErrorSchema)


class IdempotencyHeadersSchema(Schema):
    """Request headers that make a submission safe to repeat."""

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(1, 255),
        metadata={"description": "Send the same key again to get the same task back (24 h)."},
    )


#: The OpenAPI document's pattern for a header: none of the characters Python's
#: str.splitlines() breaks at, which the email package refuses.
HEADER_PATTERN = r"^[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*$"


def header_value(value: str) -> None:
    """Refuse what the email package refuses in a header: every line break Python knows
    (CR, LF, VT, FF, U+0085, U+2028, ..., where ``str.splitlines`` breaks, a trailing one
    too), and anything else it refuses, asking it."""
    try:
        if value.splitlines() != [value]:
            raise ValueError
        EmailMessage()["Subject"] = value
    except ValueError:
        raise ValidationError("Must be a single line (no line or paragraph breaks).") from None


def earlier_tasks(description: str) -> fields.List:
    """A list of ids of the caller's earlier tasks whose files a job uses."""
    return fields.List(
        fields.UUID(),
        validate=validate.Length(max=MAX_EARLIER_TASKS),
        metadata={"description": description},
    )


#: The most earlier tasks one job may take files from.
MAX_EARLIER_TASKS = 20


class EmailJobSchema(Schema):
    """An email to send over SMTP."""

    to = fields.List(
        fields.Email(validate=header_value), required=True, validate=validate.Length(1, 50)
    )
    subject = fields.String(
        required=True,
        validate=[validate.Length(1, 998), header_value],
        metadata={"pattern": HEADER_PATTERN},
    )
    text = fields.String(required=True, validate=validate.Length(max=1_000_000))
    html = fields.String(validate=validate.Length(max=1_000_000))
    attachment_tasks = earlier_tasks(
        "Your earlier tasks (a report, say) whose files are attached, at most 20 MiB"
    )


class TableCell(fields.Field):
    """A table cell: a string or a number, rendered as text."""

    def _deserialize(self, value: object, attr: object, data: object, **kwargs: object) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("A cell is a string or a number.")
        return str(value)


class ReportSectionSchema(Schema):
    """One section of a report."""

    heading = fields.String(required=True, validate=validate.Length(1, 200))
    text = fields.String(required=True, validate=validate.Length(max=MAX_SECTION_CHARS))


class ReportTableSchema(Schema):
    """A table at the end of a report."""

    columns = fields.List(fields.String(), required=True, validate=validate.Length(1, 20))
    rows = fields.List(
        fields.List(TableCell(metadata={"oneOf": [{"type": "string"}, {"type": "number"}]})),
        required=True,
        validate=validate.Length(max=2000),
    )

    @validates_schema
    def rows_match_columns(self, table: dict[str, Any], **kwargs: object) -> None:
        """Every row has one cell per column."""
        width = len(table["columns"])
        errors = {
            index: [f"Expected {width} cells, got {len(row)}."]
            for index, row in enumerate(table["rows"])
            if len(row) != width
        }
        if errors:
            raise ValidationError({"rows": errors})


class ReportJobSchema(Schema):
    """A PDF report to render."""

    title = fields.String(required=True, validate=validate.Length(1, 200))
    sections = fields.List(
        fields.Nested(ReportSectionSchema), required=True, validate=validate.Length(1, 200)
    )
    table = fields.Nested(ReportTableSchema)
    # A date, not a string: the worker's report_task receives a datetime.date.
    as_of = fields.Date(metadata={"description": "The date the report is as of (ISO 8601)"})
    image_tasks = earlier_tasks("Your earlier tasks (thumbnails, say) whose images it shows")

    @validates_schema
    def not_too_long(self, report: dict[str, Any], **kwargs: object) -> None:
        """Keep one report to a few seconds of rendering."""
        length = sum(len(section["text"]) for section in report["sections"])
        if length > MAX_REPORT_CHARS:
            raise ValidationError(
                f"The sections hold {length} characters; a report takes at most "
                f"{MAX_REPORT_CHARS}.",
                "sections",
            )

    @validates_schema
    def text_is_drawable(self, report: dict[str, Any], **kwargs: object) -> None:
        """Refuse characters the report's font has no glyph for, naming where they are."""
        errors: dict[str, Any] = {}

        def check(text: str, *path: str | int) -> None:
            missing = unsupported_characters(text)
            if missing:
                node = errors
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = [f"The report font cannot draw these characters: {missing}"]

        check(report["title"], "title")
        for index, section in enumerate(report["sections"]):
            check(section["heading"], "sections", index, "heading")
            check(section["text"], "sections", index, "text")
        if report.get("table"):
            table = report["table"]
            cells = [*table["columns"], *(cell for row in table["rows"] for cell in row)]
            check(" ".join(cells), "table")
        if errors:
            raise ValidationError(errors)


class RepeatedOrCommaList(fields.List):
    """A list sent as repeated form fields (``sizes=64&sizes=128``), as one comma list
    (``sizes=64,128``), or both: what generated clients and curl users each send."""

    is_multiple = True  # webargs: read every value of a repeated field

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        items = value if isinstance(value, (list, tuple)) else [value]
        parts = [
            part.strip()
            for item in items
            for part in (item.split(",") if isinstance(item, str) else [item])
        ]
        return super()._deserialize(parts, attr, data, **kwargs)


class ThumbnailJobSchema(Schema):
    """An image to make thumbnails of, as multipart/form-data."""

    file = Upload(required=True, metadata={"description": "A JPEG, PNG, WebP or GIF image"})
    sizes = RepeatedOrCommaList(
        fields.Integer(validate=validate.Range(16, 2048)),
        load_default=lambda: [128],
        validate=validate.Length(1, 10),
        metadata={
            "description": "Edge lengths in pixels: repeated fields (sizes=64, sizes=128) "
            "or one comma list (64,128,256)"
        },
    )
    format = fields.String(load_default="png", validate=validate.OneOf(["png", "webp", "jpeg"]))


class VideoJobSchema(Schema):
    """A video to make a poster, a contact sheet and a web preview of, as
    multipart/form-data."""

    file = Upload(
        required=True,
        metadata={
            "description": "A video FFmpeg reads (MP4, WebM, MKV, MOV, ...), within "
            "MAX_VIDEO_UPLOAD_BYTES, MAX_VIDEO_SECONDS and MAX_VIDEO_PIXELS"
        },
    )
    preview_height = fields.Integer(
        load_default=360,
        validate=validate.Range(PREVIEW_HEIGHTS[0], PREVIEW_HEIGHTS[1]),
        metadata={
            "description": "The preview's height in pixels, made even and never above the source's"
        },
    )
    preview_format = fields.String(
        load_default="mp4",
        validate=validate.OneOf(sorted(PREVIEW_FORMATS)),
        metadata={"description": "mp4: H.264 (plays everywhere); webm: VP9"},
    )
    contact_frames = fields.Integer(
        load_default=12,
        validate=validate.Range(1, 36),
        metadata={"description": "How many frames the contact sheet shows"},
    )


class UploadSchema(Schema):
    """A file for workflow steps to read, as multipart/form-data."""

    file = Upload(
        required=True,
        metadata={"description": "An image (JPEG, PNG, WebP, GIF) or a video"},
    )


class UploadedSchema(Schema):
    """An upload kept for the steps that read it (until RESULT_EXPIRES)."""

    upload_id = fields.String(required=True, metadata={"description": "Its content's SHA-256"})
    kind = fields.String(required=True, validate=validate.OneOf(["image", "video"]))
    size_bytes = fields.Integer(required=True)


UPLOAD_ID = fields.String(
    required=True,
    validate=validate.Regexp(r"^[0-9a-f]{64}$", error="An upload_id from POST /api/uploads."),
    metadata={"description": "What POST /api/uploads answered"},
)


class UploadedImageJobSchema(Schema):
    """A workflow's thumbnail step: an uploaded image's id, and the thumbnails' sizes."""

    upload_id = UPLOAD_ID
    sizes = fields.List(
        fields.Integer(validate=validate.Range(16, 2048)),
        load_default=lambda: [128],
        validate=validate.Length(1, 10),
    )
    format = fields.String(load_default="png", validate=validate.OneOf(["png", "webp", "jpeg"]))


class UploadedVideoJobSchema(VideoJobSchema):
    """A workflow's video step: an uploaded video's id, and the options of the video job."""

    class Meta:
        exclude = ("file",)

    upload_id = UPLOAD_ID


class WorkflowRequestSchema(Schema):
    """Steps of the job kinds to run as one canvas."""

    name = fields.String(load_default="", validate=validate.Length(max=200))
    steps = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(1, 20),
        metadata={
            "description": "The stages, in order: each a step, or a list of steps that run "
            "side by side. A step is {name, kind (slow, email, report, thumbnail, video), "
            "inputs (what that kind's submission takes; thumbnail and video take an "
            "upload_id from POST /api/uploads), uses (names of earlier steps whose files a "
            "report shows or an email attaches)}",
            "items": {
                "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]
            },
        },
    )


class WorkflowStepSchema(Schema):
    """One step of a workflow, and its task (null until queued)."""

    name = fields.String(required=True)
    kind = fields.String(required=True)
    state = fields.String(required=True, validate=A_TASK_STATE)
    after = fields.List(fields.String(), required=True)
    task_id = fields.String(required=True)
    task = fields.Nested(TaskSchema, allow_none=True)


class WorkflowLinksSchema(Schema):
    """Where to go from a workflow."""

    self = fields.String(required=True)
    cancel = fields.String(required=True)
    retry = fields.String(required=True)


class WorkflowSchema(Schema):
    """A workflow: its steps, and its state and progress drawn from theirs."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    owner = fields.String(required=True)
    state = fields.String(required=True, validate=A_TASK_STATE)
    progress = fields.Nested(ProgressSchema, required=True)
    submitted_at = timestamp(required=True)
    finished_at = timestamp(allow_none=True)
    stages = fields.List(fields.List(fields.String()), required=True)
    steps = fields.List(fields.Nested(WorkflowStepSchema), required=True)
    links = fields.Nested(WorkflowLinksSchema, required=True)


#: The kinds a schedule may run: those without an upload (an upload expires).
SCHEDULE_KINDS = ("slow", "email", "report")


class ScheduleRequestSchema(Schema):
    """A periodic job: a kind with its inputs, run on a crontab in a time zone or at an
    interval."""

    name = fields.String(load_default="", validate=validate.Length(0, 100))
    kind = fields.String(required=True, validate=validate.OneOf(SCHEDULE_KINDS))
    inputs = fields.Dict(
        keys=fields.String(), load_default=dict,
        metadata={"description": "The kind's inputs, as its submission takes them"},
    )  # fmt: skip
    cron = fields.String(
        validate=validate.Length(9, 200),
        metadata={"description": "minute hour day-of-month month day-of-week, e.g. 0 3 * * *"},
    )
    timezone = fields.String(
        validate=validate.Length(1, 64),
        metadata={"description": "An IANA zone the crontab is read in (default UTC)"},
    )
    every_seconds = fields.Float(
        validate=validate.Range(min=1, max=366 * 24 * 3600),
        metadata={"description": "Run at this interval instead of a crontab"},
    )
    paused = fields.Boolean(load_default=False)

    @validates_schema
    def one_timing(self, data: dict[str, Any], partial: bool = False, **_: Any) -> None:
        """A crontab or an interval, not both (a change may give neither)."""
        given = [name for name in ("cron", "every_seconds") if data.get(name) is not None]
        if len(given) > 1:
            raise ValidationError("Give cron or every_seconds, not both.", "every_seconds")
        if not given and not partial:
            raise ValidationError("Give cron (with timezone) or every_seconds.", "cron")
        if "timezone" in data and "every_seconds" in data:
            raise ValidationError("A time zone applies to a crontab only.", "timezone")


class ScheduleChangeSchema(ScheduleRequestSchema):
    """A change to a schedule: any of its fields (loaded with ``partial=True``)."""


class ScheduleLinksSchema(Schema):
    """Where to go from a schedule."""

    self = fields.String(required=True)
    runs = fields.String(required=True, metadata={"description": "Its runs, in the task list"})
    pause = fields.String(required=True)
    resume = fields.String(required=True)
    last_run = fields.String(metadata={"description": "Its latest run's task"})


class ScheduleSchema(Schema):
    """A schedule, with its last and next runs."""

    id = fields.String(dump_only=True, required=True)
    name = fields.String(dump_only=True)
    owner = fields.String(dump_only=True)
    kind = fields.String(dump_only=True, required=True)
    inputs = fields.Dict(dump_only=True)
    cron = fields.String(dump_only=True, allow_none=True)
    timezone = fields.String(dump_only=True, allow_none=True)
    every_seconds = fields.Float(dump_only=True, allow_none=True)
    paused = fields.Boolean(dump_only=True, required=True)
    created_at = timestamp(allow_none=True)
    last_run_at = timestamp("When its latest run was queued", allow_none=True)
    next_run_at = timestamp("When beat queues its next run (none while paused)", allow_none=True)
    total_runs = fields.Integer(dump_only=True)
    recent_runs = fields.List(
        fields.String(), dump_only=True, metadata={"description": "Its latest runs' task ids"}
    )
    links = fields.Nested(ScheduleLinksSchema, dump_only=True, required=True)


class WebhookSecretsSchema(Schema):
    """The caller's webhook signing secrets (Standard Webhooks' ``whsec_...``)."""

    secret = fields.String(
        dump_only=True, required=True, metadata={"description": "Signs every delivery"}
    )
    previous_secret = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Signs too, until previous_secret_until (after a rotation)"},
    )
    previous_secret_until = timestamp(allow_none=True)
    rotated_at = timestamp(allow_none=True)
