"""Schedules: periodic jobs of the job kinds, run by celery beat (``my_app.schedules``),
created, listed, edited, paused, resumed and deleted by their owner."""

from __future__ import annotations

from typing import Any

from celery import uuid
from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from ..owners import current_owner, visible_owner
from ..schedules import (
    ScheduleError,
    ScheduleRecord,
    delete_schedule,
    read_schedule,
    save_schedule,
    schedule_ids,
    timing,
)
from ..store.ledger import utc_now
from .quotas import check_job_seconds
from .schemas import ErrorSchema, ScheduleChangeSchema, ScheduleRequestSchema, ScheduleSchema
from .workflows import STEP_KINDS

blp = Blueprint(
    "schedules", __name__, url_prefix="/api/schedules",
    description="Run a job on a crontab or at an interval, with celery beat.",
)  # fmt: skip

#: The most schedules a list shows.
MAX_LISTED = 500


def schedule_or_404(schedule_id: str) -> ScheduleRecord:
    """The caller's schedule (anyone's, for an admin), or 404."""
    found = read_schedule(current_app.extensions["celery"], schedule_id)
    owner = visible_owner()
    if found is None or (owner is not None and found.owner != owner):
        abort(404, message=f"No schedule {schedule_id}.")
    return found


def schedule_body(record: ScheduleRecord) -> dict[str, Any]:
    """A schedule as ScheduleSchema shows it, with its links."""
    url = f"{request.script_root}{blp.url_prefix}/{record.id}"
    links = {
        "self": url,
        "runs": f"{request.script_root}/api/tasks?schedule={record.id}",
        "pause": f"{url}/pause",
        "resume": f"{url}/resume",
    }
    if record.recent_runs:
        links["last_run"] = f"{request.script_root}/api/tasks/{record.recent_runs[0]}"
    return {**record.as_dict(), "links": links}


def checked_inputs(kind: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind's task and its inputs, checked by the kind's schema (422 naming each
    problem under ``inputs``)."""
    task, schema = STEP_KINDS[kind]
    try:
        checked = schema.load(inputs)
    except ValidationError as error:
        abort(422, message="The inputs do not fit the kind.",
              errors={"json": {"inputs": error.messages}})  # fmt: skip
    if kind == "slow":
        check_job_seconds(checked["seconds"])
    return task.name, checked


def body_of(record: ScheduleRecord) -> dict[str, Any]:
    """A stored schedule as the request that would make it (a change starts from it)."""
    return {
        "name": record.name, "kind": record.kind, "inputs": record.inputs,
        "cron": record.cron, "timezone": record.timezone,
        "every_seconds": record.every_seconds, "paused": record.paused,
    }  # fmt: skip


def resaved(record: ScheduleRecord, body: dict[str, Any], *, restart: bool) -> ScheduleRecord:
    """Store a changed schedule, keeping its id, owner and creation time."""
    created_at = record.created_at or utc_now()
    return saved(record.id, body, owner=record.owner, created_at=created_at, restart=restart)


def saved(
    schedule_id: str, body: dict[str, Any], *, owner: str, created_at: str, restart: bool
) -> ScheduleRecord:
    """Store a schedule from a full body; 422 for a timing that cannot be."""
    celery_app = current_app.extensions["celery"]
    task_name, inputs = checked_inputs(body["kind"], body["inputs"])
    try:
        timing_ = timing(body.get("cron"), body.get("timezone"), body.get("every_seconds"),
                         celery_app)  # fmt: skip
    except ScheduleError as error:
        field = "cron" if body.get("cron") is not None else "every_seconds"
        if "time zone" in str(error):
            field = "timezone"
        abort(422, message=str(error), errors={"json": {field: [str(error)]}})
    save_schedule(
        celery_app, schedule_id, owner=owner, name=body["name"], task_name=task_name,
        inputs=inputs, timing_=timing_, paused=body["paused"], created_at=created_at,
        restart=restart,
    )  # fmt: skip
    return schedule_or_404(schedule_id)


@blp.route("")
class Schedules(MethodView):
    @blp.response(200, ScheduleSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List your schedules (everyone's, for an admin), with their last and next runs"""
        celery_app = current_app.extensions["celery"]
        records = (read_schedule(celery_app, i) for i in schedule_ids(celery_app, visible_owner()))
        found = sorted((r for r in records if r is not None), key=lambda r: r.created_at or "")
        return [schedule_body(record) for record in found[:MAX_LISTED]]

    @blp.arguments(ScheduleRequestSchema())
    @blp.response(201, ScheduleSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="The timing or inputs cannot be")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a schedule: a job kind with its inputs, on a crontab (in a time zone) or
        at an interval; its first run is the first time due after now"""
        record = saved(uuid(), body, owner=current_owner(), created_at=utc_now(), restart=True)
        created = schedule_body(record)
        return created, 201, {"Location": created["links"]["self"]}


@blp.route("/<schedule_id>")
class ScheduleItem(MethodView):
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such schedule")
    def get(self, schedule_id: str) -> dict[str, Any]:
        """Read a schedule: its job, timing, whether it is paused, its last and next runs"""
        return schedule_body(schedule_or_404(schedule_id))

    @blp.arguments(ScheduleChangeSchema(partial=True))
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such schedule")
    @blp.alt_response(422, schema=ErrorSchema, description="The timing or inputs cannot be")
    def patch(self, changes: dict[str, Any], schedule_id: str) -> dict[str, Any]:
        """Edit a schedule: any of its fields; a new timing counts from now"""
        record = schedule_or_404(schedule_id)
        body = body_of(record)
        if "cron" in changes:
            body.update(every_seconds=None)
        if "every_seconds" in changes:
            body.update(cron=None, timezone=None)
        body.update(changes)
        retimed = any(name in changes for name in ("cron", "timezone", "every_seconds"))
        resumed = record.paused and not body["paused"]
        return schedule_body(resaved(record, body, restart=retimed or resumed))

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema, description="No such schedule")
    def delete(self, schedule_id: str) -> Response:
        """Delete a schedule; its past runs stay"""
        delete_schedule(current_app.extensions["celery"], schedule_or_404(schedule_id))
        return Response(status=204)


def paused_or_resumed(schedule_id: str, paused: bool) -> dict[str, Any]:
    """Pause a schedule, or resume it counting its next run from now."""
    record = schedule_or_404(schedule_id)
    if record.paused == paused:
        return schedule_body(record)
    body = {**body_of(record), "paused": paused}
    return schedule_body(resaved(record, body, restart=not paused))


@blp.route("/<schedule_id>/pause")
class SchedulePause(MethodView):
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such schedule")
    def post(self, schedule_id: str) -> dict[str, Any]:
        """Pause a schedule: beat queues no run until it is resumed"""
        return paused_or_resumed(schedule_id, True)


@blp.route("/<schedule_id>/resume")
class ScheduleResume(MethodView):
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such schedule")
    def post(self, schedule_id: str) -> dict[str, Any]:
        """Resume a schedule: its next run is the first time due from now (none missed
        while paused runs at once)"""
        return paused_or_resumed(schedule_id, False)
