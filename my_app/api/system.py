"""``GET /api/system``: each queue's depth and oldest waiting job, and the workers online
with the queues they consume and the tasks they run (the page's system panel)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..auth import current_caller
from ..store.broker_queues import queue_overview
from ..store.ledger import Ledger, ledger_of

blp = Blueprint("system", __name__, url_prefix="/api/system", description="What runs where.")


class QueueSchema(Schema):
    """One queue, as the broker and the workers' heartbeats see it."""

    name = fields.String(required=True)
    depth = fields.Integer(required=True, metadata={"description": "Messages waiting"})
    oldest_waiting_seconds = fields.Float(
        required=True, metadata={"description": "How long its oldest untaken job has waited"}
    )
    consumers = fields.List(fields.String(), required=True)


class WorkerSchema(Schema):
    """One worker with a current heartbeat (renewed every 10 s)."""

    name = fields.String(required=True)
    queues = fields.List(fields.String(), required=True)
    running = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Ids of the caller's tasks it runs (every task's, for an admin)"},
    )
    seen_at = fields.String(required=True)


class SystemSchema(Schema):
    """Queues and workers."""

    queues = fields.List(fields.Nested(QueueSchema), required=True)
    workers = fields.List(fields.Nested(WorkerSchema), required=True)


def visible_tasks(ledger: Ledger, task_ids: list[str]) -> set[str]:
    """Which of the running ``task_ids`` the caller may see: all for an admin, else its
    own (another owner's task id is not its to know)."""
    caller = current_caller()
    if caller.admin:
        return set(task_ids)
    owners = ledger.owners_of(task_ids)
    return {task for task, owner in zip(task_ids, owners, strict=True) if owner == caller.owner}


@blp.route("")
class System(MethodView):
    @blp.response(200, SystemSchema)
    def get(self) -> dict[str, Any]:
        """Queues (depth, oldest waiting job, consumers) and the workers online"""
        ledger = ledger_of()
        heartbeats = ledger.heartbeats.live()
        queues = queue_overview(
            current_app.extensions["celery"], ledger.client,
            list(current_app.config["TASK_QUEUES"]), heartbeats,
        )  # fmt: skip
        visible = visible_tasks(
            ledger, [t for beat in heartbeats.values() for t in beat.get("running", [])]
        )
        return {
            "queues": [
                {**queue, "oldest_waiting_seconds": round(queue["oldest_waiting_seconds"], 1)}
                for queue in queues
            ],
            "workers": [
                {
                    "name": name,
                    "queues": beat["queues"],
                    "running": [task for task in beat.get("running", []) if task in visible],
                    "seen_at": beat["at"],
                }
                for name, beat in sorted(heartbeats.items())
            ],
        }
