"""The browser UI: a page to submit jobs and watch them live, and a page per task."""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, render_template

from .api.events import present
from .api.tasks import tasks_as_shown
from .owners import current_owner

bp = Blueprint("ui", __name__)


@bp.get("/")
def index() -> str:
    """The job forms and the live table of your recent tasks."""
    return render_template("index.html")


@bp.get("/tasks/<uuid:task_id>")
def task_detail(task_id: UUID) -> tuple[str, int]:
    """One task's full record, result, error and artifacts, kept live."""
    found = tasks_as_shown([str(task_id)])
    if not found or found[0]["owner"] != current_owner():
        return render_template("task.html", task=None, task_id=task_id), 404
    return render_template("task.html", task=present(found[0]), task_id=task_id), 200
