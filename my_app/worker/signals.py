"""The worker's side of the ledger: which worker took each message, and an entry for a
message that arrived without one (another service published it)."""

from __future__ import annotations

from typing import Any

from celery.signals import task_received

from ..store import ledger
from ..submission import announce, entry_for


@task_received.connect
def record_received(request: Any, **_: Any) -> None:
    """Note the worker that took the task, recording the task if its producer did not.

    Runs in the worker's main process as each message arrives, before the task runs.
    """
    task = request.task
    flask_app = getattr(task, "flask_app", None)
    if flask_app is None:  # a task of a Celery app that is not ours
        return
    client, expires = flask_app.extensions["redis"], flask_app.config["RESULT_EXPIRES"]
    if ledger.record_received(client, request.id, worker=request.hostname, expires=expires):
        return
    entry = entry_for(
        task.app, request.name, request.id, request.args, request.kwargs,
        owner=flask_app.config["DEFAULT_OWNER"],
        queue=(request.delivery_info or {}).get("routing_key") or "",
    )  # fmt: skip
    ledger.record_foreign(client, entry, worker=request.hostname, expires=expires)
    announce(task.app, entry)
