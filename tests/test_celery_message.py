"""The message submission enqueues is the one Celery's own apply_async would enqueue."""

from __future__ import annotations

import base64
import json

from my_app.celery_message import task_message
from my_app.tasks import report_task, slow_task


def pushed_by_apply_async(app, task, queue, **options):
    redis = app.extensions["redis"]
    app.extensions["celery"].tasks[task.name].apply_async(**options)
    return json.loads(redis.lpop(queue))


def test_the_message_matches_apply_async(idle_app):
    celery_app = idle_app.extensions["celery"]
    kwargs = {"name": "Zoë — Ada", "seconds": 3}  # non-ASCII: escaped as kombu escapes it
    ours = json.loads(
        task_message(celery_app, slow_task.name, "t-1", kwargs, soft_time_limit=5, time_limit=9)
    )
    theirs = pushed_by_apply_async(
        idle_app, slow_task, "default",
        kwargs=kwargs, task_id="t-1", soft_time_limit=5, time_limit=9,
    )  # fmt: skip
    for envelope in (ours, theirs):
        envelope["properties"].pop("delivery_tag")  # a fresh uuid each time
        envelope["headers"].pop("origin")  # the producer's process name
    assert ours == theirs
    assert json.loads(base64.b64decode(ours["body"]))[1] == kwargs


def test_heavy_jobs_are_addressed_to_the_heavy_queue(idle_app):
    celery_app = idle_app.extensions["celery"]
    message = json.loads(task_message(celery_app, report_task.name, "t-2", {"title": "T"}))
    assert message["properties"]["delivery_info"]["routing_key"] == "heavy"
