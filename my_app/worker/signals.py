"""The worker's side of the ledger: which worker took each message, and an entry for a
message that arrived without one (another service published it)."""

from __future__ import annotations

from typing import Any

from celery.signals import task_received, task_retry

from ..store import job_metrics, ledger
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
    queue = (request.delivery_info or {}).get("routing_key") or ""
    if ledger.record_received(
        client, request.id, worker=request.hostname, expires=expires, queue=queue
    ):
        return
    entry = entry_for(
        task.app, request.name, request.id, request.args, request.kwargs,
        owner=flask_app.config["DEFAULT_OWNER"], queue=queue,
    )  # fmt: skip
    ledger.record_foreign(client, entry, worker=request.hostname, expires=expires)
    announce(task.app, entry)


@task_retry.connect
def count_retry(request: Any = None, sender: Any = None, **_: Any) -> None:
    """Count a retry of one of our tasks (in the pool process that retries it)."""
    flask_app = getattr(sender, "flask_app", None)
    if flask_app is not None:
        kind = getattr(sender, "kind", None) or sender.name
        job_metrics.count_retried(flask_app.extensions["redis"], kind)
