"""The browser UI: a page to submit jobs and watch them live, and a page per task."""

from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .api.events import present
from .api.schemas import MAX_SECONDS
from .api.workflows import workflow_body
from .auth import current_caller, key_for_secret, keys_required, same_origin, sign_in, sign_out
from .owners import can_see
from .records import TaskState
from .status import read_tasks
from .workflows import read_workflow

bp = Blueprint("ui", __name__)


@bp.app_context_processor
def signed_in_as() -> dict[str, str | None]:
    """The owner a browser signed in as, for the header's sign-out form."""
    caller = g.get("caller")
    return {"signed_in_as": caller.owner if caller and caller.signed_in_by == "session" else None}


@bp.get("/")
def index() -> str:
    """The job forms and the live table of your recent tasks."""
    longest = MAX_SECONDS if current_caller().admin else current_app.config["MAX_JOB_SECONDS"]
    return render_template(
        "index.html",
        max_seconds=min(longest, MAX_SECONDS),
        states=[state.value for state in TaskState],
        kinds=sorted(current_app.config["TASK_TIME_LIMITS"]),
    )


@bp.get("/tasks/<uuid:task_id>")
def task_detail(task_id: UUID) -> tuple[str, int]:
    """One task's full record, result, error and artifacts, kept live."""
    found = read_tasks([str(task_id)])
    if not found or not can_see(found[0]):
        return render_template("task.html", task=None, task_id=task_id), 404
    return render_template("task.html", task=present(found[0]), task_id=task_id), 200


@bp.get("/workflows/<uuid:workflow_id>")
def workflow_detail(workflow_id: UUID) -> tuple[str, int]:
    """One workflow: its steps as a graph of stages, with live states and their files."""
    workflow = read_workflow(str(workflow_id))
    if workflow is None or not can_see(workflow):
        return render_template("workflow.html", workflow=None, workflow_id=workflow_id), 404
    return render_template(
        "workflow.html", workflow=workflow_body(workflow), workflow_id=workflow_id
    ), 200


def same_site_path(target: str) -> str | None:
    """``target`` if it is a path on this site (``/tasks/...``), else None.

    A browser drops tabs, line breaks and other control characters from a Location and
    reads a backslash as a slash, so a slash followed by one of them and a host name
    would leave the site: any such character refuses it, and so does anything with a
    scheme or a host.
    """
    if any(ord(char) < 0x20 or char in "\\\x7f" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in_page() -> Response | tuple[str, int] | str:
    """Sign in with an API key; the browser then holds a signed session cookie."""
    if not keys_required():
        return redirect(url_for("ui.index"))
    next_page = same_site_path(request.values.get("next", "")) or url_for("ui.index")
    if request.method == "GET":
        return render_template("sign_in.html", next_page=next_page, error=None)
    if not same_origin():
        abort(403, "Cross-site sign-in refused.")
    key = key_for_secret(request.form.get("key", "").strip())
    if key is None:
        return render_template("sign_in.html", next_page=next_page, error="Unknown key."), 401
    sign_in(key)
    return redirect(next_page, code=303)


@bp.post("/sign-out")
def sign_out_page() -> Response:
    """Forget the browser's key."""
    current_caller()  # a signed-out browser has nothing to sign out of
    sign_out()
    return redirect(url_for("ui.sign_in_page"), code=303)
