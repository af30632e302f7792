"""The baseline: Flask + Celery written the way Flask's documentation shows it.

A ``celery_init_app`` with an app-context Task, a POST route that calls ``.delay()`` and
returns the id, a route reading ``AsyncResult(id).state``, Redis broker and result
backend, results kept. ``create_app()`` for gunicorn, ``celery_app`` for the worker.
"""

from __future__ import annotations

import os
import time

from celery import Celery, Task, shared_task
from celery.result import AsyncResult
from flask import Flask, request


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented pattern."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


@shared_task(ignore_result=False)
def noop(name: str = "", seconds: int = 0) -> float:
    """Do nothing; return when it ran (for the submit-to-start latency)."""
    return time.time()


def create_app() -> Flask:
    """The baseline app, on the Redis at REDIS_URL."""
    app = Flask(__name__)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    app.config["CELERY"] = {"broker_url": redis_url, "result_backend": redis_url}
    celery_init_app(app)

    @app.post("/submit")
    def submit() -> dict:
        body = request.get_json()
        result = noop.delay(body.get("name", ""), body.get("seconds", 0))
        return {"result_id": result.id}

    @app.get("/status/<task_id>")
    def status(task_id: str) -> dict:
        return {"state": AsyncResult(task_id).state}

    @app.get("/plain")
    def plain() -> dict:
        return {"hello": "world"}

    return app


celery_app = create_app().extensions["celery"]
