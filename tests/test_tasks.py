"""The tasks: every kind is registered, routed to its queue, and redelivered if lost."""

from __future__ import annotations

from my_app.tasks import email_task, report_task, slow_task, thumbnail_task


def test_every_kind_is_registered_with_the_worker(app):
    celery_app = app.extensions["celery"]
    for kind, task in (("slow", slow_task), ("email", email_task), ("report", report_task),
                       ("thumbnail", thumbnail_task)):  # fmt: skip
        assert celery_app.tasks[task.name].kind == kind


def test_heavy_jobs_go_to_the_heavy_queue_the_rest_to_default(idle_app):
    client = idle_app.test_client()
    redis = idle_app.extensions["redis"]
    client.post("/api/tasks/slow", json={"name": "Ada"})
    client.post("/api/tasks/email", json={"to": ["a@example.com"], "subject": "s", "text": "t"})
    client.post(
        "/api/tasks/report", json={"title": "T", "sections": [{"heading": "H", "text": "x"}]}
    )
    assert (redis.llen("default"), redis.llen("heavy")) == (2, 1)


def test_jobs_acknowledge_late_and_are_requeued_when_their_process_dies():
    for task in (slow_task, email_task, report_task, thumbnail_task):
        assert task.acks_late and task.reject_on_worker_lost, task.name
