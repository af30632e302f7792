"""Marshmallow schemas of the task API: what each job accepts and what a task looks like."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..task_state import STATES

MAX_SECONDS = 3600


def timestamp(**kwargs: object) -> fields.String:
    """An ISO 8601 UTC time, kept as the string the ledger and Celery store."""
    return fields.String(dump_only=True, metadata={"format": "date-time"}, **kwargs)


class SlowJobSchema(Schema):
    """The seed job: count ``seconds`` seconds, then greet ``name``."""

    name = fields.String(required=True, validate=validate.Length(1, 200))
    seconds = fields.Integer(
        load_default=10, strict=True, validate=validate.Range(0, MAX_SECONDS)
    )


class RunTaskQueryArgsSchema(Schema):
    """Query arguments of ``/run-task/<name>``."""

    seconds = fields.Integer(load_default=10, validate=validate.Range(0, MAX_SECONDS))


class ProgressSchema(Schema):
    """How far a task got."""

    current = fields.Integer(required=True)
    total = fields.Integer(required=True)
    percent = fields.Integer(required=True)
    message = fields.String()


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
    artifacts = fields.Dict(keys=fields.String(), values=fields.String())


class TaskSchema(Schema):
    """A submitted job and everything known about it."""

    id = fields.String(dump_only=True, required=True)
    kind = fields.String(dump_only=True, required=True)
    state = fields.String(dump_only=True, required=True, validate=validate.OneOf(STATES))
    progress = fields.Nested(ProgressSchema, dump_only=True, allow_none=True)
    result = fields.Raw(dump_only=True, allow_none=True)
    error = fields.Nested(TaskErrorSchema, dump_only=True, allow_none=True)
    inputs = fields.Dict(dump_only=True)
    submitted_at = timestamp(required=True)
    started_at = timestamp(allow_none=True)
    finished_at = timestamp(allow_none=True)
    retry_at = timestamp(allow_none=True)
    links = fields.Nested(TaskLinksSchema, dump_only=True, required=True)


class TaskQueryArgsSchema(Schema):
    """Filters of the task list."""

    state = fields.String(validate=validate.OneOf(STATES))
    kind = fields.String(validate=validate.Length(1, 50))


class RunTaskAcceptedSchema(Schema):
    """The seed route's answer to a submission."""

    message = fields.String(required=True)
    task_id = fields.String(required=True)
    status_url = fields.String(required=True)


class TaskStatusSchema(Schema):
    """The seed route's view of a task."""

    task_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATES))
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
