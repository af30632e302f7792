"""The seed routes: ``/run-task/<name>`` queues the slow job, ``/status/<id>`` follows it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import request, url_for
from flask_smorest import abort

from .api.blueprint import Blueprint
from .api.schemas import RunTaskAcceptedSchema, RunTaskQueryArgsSchema, TaskStatusSchema
from .api.tasks import task_or_404
from .submission import submit_job

blp = Blueprint("run_task", __name__, description="The quick start: one job, one status URL.")

MAX_NAME_LENGTH = 200


@blp.route("/run-task/<name>", methods=["GET", "POST"])
@blp.arguments(RunTaskQueryArgsSchema(), location="query")
@blp.response(202, RunTaskAcceptedSchema)
@blp.alt_response(422, description="Invalid seconds or name")
@blp.alt_response(429, description="Too many submissions this minute")
@blp.alt_response(503, description="Redis is unreachable; nothing was queued")
def run_task(args: dict[str, Any], name: str) -> Any:
    """Queue the slow job for a name; ?seconds=N (0 to 3600) sets its length"""
    if len(name) > MAX_NAME_LENGTH:
        abort(422, message=f"name is longer than {MAX_NAME_LENGTH} characters.")
    inputs = {"name": name, "seconds": args["seconds"]}
    task_id = submit_job("slow", inputs, client_address=request.remote_addr).task["id"]
    status_url = url_for("run_task.status", task_id=task_id)
    accepted = {
        "message": "Task received and sent to the worker",
        "task_id": task_id,
        "status_url": status_url,
    }
    return accepted, 202, {"Location": status_url}


@blp.route("/status/<uuid:task_id>")
@blp.response(200, TaskStatusSchema)
@blp.alt_response(404, description="No such task")
def status(task_id: UUID) -> dict[str, Any]:
    """Read the state, progress and result of a task"""
    task = task_or_404(task_id)
    answer = {
        "task_id": task["id"],
        "status": task["state"],
        "progress": task["progress"],
        "result": task["result"],
    }
    if task["error"]:
        answer["error"] = task["error"]
    return answer
