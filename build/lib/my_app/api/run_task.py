"""The quick-start routes: ``/run-task/<name>`` queues the slow job, ``/status/<id>`` follows it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import request, url_for
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import MethodNotAllowed

from ..tasks import slow_task
from .limits import submission_limit
from .quotas import check_active_jobs, check_job_seconds
from .schemas import ErrorSchema, RunTaskAcceptedSchema, RunTaskQueryArgsSchema, TaskStatusSchema
from .tasks import task_or_404

blp = Blueprint("run_task", __name__, description="The quick start: one job, one status URL.")

MAX_NAME_LENGTH = 200


@blp.route("/run-task/<name>", methods=["GET", "POST"])
@submission_limit
@blp.arguments(RunTaskQueryArgsSchema(), location="query")
@blp.response(202, RunTaskAcceptedSchema)
@blp.alt_response(422, schema=ErrorSchema, description="Invalid seconds or name")
@blp.alt_response(429, schema=ErrorSchema, description="Too many submissions this minute")
@blp.alt_response(503, schema=ErrorSchema, description="Nothing was queued")
def run_task(args: dict[str, Any], name: str) -> Any:
    """Queue the slow job for a name; ?seconds=N (0 to 3600) sets its length"""
    if request.method == "HEAD":  # Flask answers HEAD with the GET view: no side effect
        raise MethodNotAllowed(["GET", "POST"], "HEAD would queue a job; use GET or POST.")
    if len(name) > MAX_NAME_LENGTH:
        abort(422, message=f"name is longer than {MAX_NAME_LENGTH} characters.")
    check_job_seconds(args["seconds"], location="query")
    check_active_jobs()
    result = slow_task.delay(name, args["seconds"])
    status_url = url_for("run_task.status", task_id=result.id)
    accepted = {
        "message": "Task received and sent to the worker",
        "task_id": result.id,
        "status_url": status_url,
    }
    return accepted, 202, {"Location": status_url}


@blp.route("/status/<uuid:task_id>")
@blp.response(200, TaskStatusSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such task")
def status(task_id: UUID) -> dict[str, Any]:
    """Read the state, progress and result of a task"""
    task = task_or_404(task_id)
    answer = {
        "task_id": task.id,
        "status": task.state,
        "progress": task.progress,
        "result": task.result,
    }
    if task.error:
        answer["error"] = task.error
    return answer
