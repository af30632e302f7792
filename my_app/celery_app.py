"""Celery bound to Flask: the app-context Task and a Celery app configured from ``CELERY``."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.backends.redis import RedisBackend
from flask import Flask


class SubmitOnlyRedisBackend(RedisBackend):
    """The Redis result backend, minus the producer's result subscription.

    Celery's Redis backend subscribes the submitting process to each task's result
    channel until ``.get()`` or ``.forget()`` runs, which a web process never does:
    left alone, every submission costs a round trip and a subscription in Redis.
    ``AsyncResult.get()`` still subscribes on demand.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe at submission."""


def celery_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Celery's settings from the Flask config; broker and results live at REDIS_URL.

    Submission pushes messages and the ledger in one Redis script, and the API reads
    results next to the ledger, so both must be that same Redis.
    """
    settings = dict(config["CELERY"])
    redis_url = config["REDIS_URL"]
    for name in ("broker_url", "result_backend"):
        if settings.get(name, redis_url) != redis_url:
            raise ValueError(
                f"CELERY[{name!r}] must be REDIS_URL ({redis_url}); set REDIS_URL instead."
            )
    settings["broker_url"] = redis_url
    # Celery reads "<class path>+<url>" as "this backend class at this URL".
    settings["result_backend"] = f"{__name__}:SubmitOnlyRedisBackend+{redis_url}"
    settings.setdefault("result_expires", config["RESULT_EXPIRES"])
    return settings


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for ``app``; every task body runs inside its app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(app.config))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
