"""The Celery task message, as Celery and kombu's Redis transport would enqueue it.

Building it here lets submission push it in the same atomic Redis script as the ledger
entry: one round trip per job instead of kombu's publish plus our own writes. The
message is Celery's own (``amqp.as_task_v2``), wrapped in the envelope kombu's Redis
transport stores; tests check it against what ``apply_async`` produces.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from celery import Celery

KWARGSREPR_MAX = 1024


def route_queue(celery_app: Celery, task_name: str) -> str:
    """The queue ``task_routes`` sends the task to."""
    return celery_app.amqp.router.route({}, task_name)["queue"].name


def task_message(
    celery_app: Celery,
    task_name: str,
    task_id: str,
    kwargs: dict[str, Any],
    *,
    queue: str | None = None,
    soft_time_limit: float | None = None,
    time_limit: float | None = None,
) -> str:
    """The JSON that ``apply_async`` would LPUSH onto the task's queue (``queue``, if known)."""
    queue = queue or route_queue(celery_app, task_name)
    headers, properties, body, _ = celery_app.amqp.as_task_v2(
        task_id,
        task_name,
        args=(),
        kwargs=kwargs,
        reply_to=celery_app.thread_oid,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        # What workers log; plain repr costs a fraction of Celery's saferepr.
        argsrepr="()",
        kwargsrepr=repr(kwargs)[:KWARGSREPR_MAX],
    )
    # What kombu's "json" serializer writes, for the JSON-native inputs a schema loaded,
    # without its registry's lookups (the test compares the two byte for byte).
    payload = json.dumps(body).encode()
    envelope = {
        "body": base64.b64encode(payload).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            # The anonymous exchange: the routing key names the queue.
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)
