"""Celery bound to Flask: the app-context Task and a Celery app configured from ``CELERY``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery, Task
from celery.backends.redis import RedisBackend, SentinelBackend
from flask import Flask
from kombu import Queue

from .redis_connections import SENTINEL_SCHEME, is_sentinel
from .store import ledger
from .worker.leases import LeaseRenewal


class SubmitOnlyRedisBackend(RedisBackend):
    """The Redis result backend, minus the producer's result subscription.

    Celery's Redis backend subscribes the submitting process to each task's result
    channel in ``on_task_call`` and keeps it until ``.get()`` or ``.forget()`` runs, which
    a web process never does: each submission costs a SUBSCRIBE (and, since Celery 5.5,
    an UNSUBSCRIBE from ``AsyncResult.__del__``) and holds memory meanwhile. Upstream:
    celery/celery#4707 (channels never unsubscribed when results are not fetched),
    #5320 (the backend not unsubscribing in all cases) and #10477 (``__del__``
    re-entering the pubsub lock inside ``apply_async``). ``AsyncResult.get()`` still
    subscribes on demand, so nothing else changes.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe at submission."""


class LedgerRedisBackend(SubmitOnlyRedisBackend):
    """The result backend the service configures: it also files each task that ends
    (SUCCESS, FAILURE, REVOKED) in the ledger's per-state index, just before Celery
    stores the final result. Whatever ends a task (its return, an exception, a hard time
    limit in the worker's main process, a revoke) goes through ``store_result``, so a
    client that sees a final state finds the task in that state's filtered list.

    Its connections come from a bounded, blocking pool of ``redis_max_connections``
    (REDIS_MAX_CONNECTIONS), as the app's own do (my_app.extensions): Celery's default
    pool is unbounded, so a thousand event streams reading at once opened a connection
    each, and bounded it raises "Too many connections" instead of waiting for one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Celery's Redis backend, on redis-py's BlockingConnectionPool."""
        kwargs.setdefault("connection_pool", redis.BlockingConnectionPool)
        super().__init__(*args, **kwargs)

    def store_result(self, task_id: str, result: Any, state: str, *args: Any, **kwargs: Any) -> Any:
        """Index the final state, then store the result as Celery does."""
        flask_app = getattr(self.app.Task, "flask_app", None)
        if flask_app is not None and state in ledger.INDEXED_STATES:
            ledger.record_finished(
                flask_app.extensions["redis"], task_id, state, flask_app.config["RESULT_EXPIRES"]
            )
        return super().store_result(task_id, result, state, *args, **kwargs)


class LedgerSentinelBackend(LedgerRedisBackend, SentinelBackend):
    """``LedgerRedisBackend`` on Celery's Sentinel backend: the results' Redis is the
    primary the Sentinels name (REDIS_URL ``sentinel://...``), found again after a
    failover. Its pool is Sentinel's own, which does not block (my_app.redis_connections)."""


#: Celery settings the service cannot honour, and why: refused at start-up.
REFUSED_SETTINGS = {
    "task_always_eager": "tasks must go through the queue (the ledger follows real workers)",
    "task_ignore_result": "the API reads every task's state from its result",
}


def celery_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Celery's settings from the Flask config, with the service's defaults.

    The broker is CELERY_BROKER_URL (any broker Celery supports), else REDIS_URL; the
    result backend must be a Redis, since the API reads results and follows their
    channels there. Settings the service cannot honour are refused with their name.
    """
    settings = dict(config["CELERY"])
    for name, reason in REFUSED_SETTINGS.items():
        if settings.get(name):
            raise ValueError(f"CELERY[{name!r}] cannot be set for this service: {reason}.")
    settings.setdefault("broker_url", config.get("CELERY_BROKER_URL") or config["REDIS_URL"])
    backend_url = settings.get("result_backend") or config["REDIS_URL"]
    if urlsplit(backend_url).scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
        raise ValueError(
            f"CELERY['result_backend'] must be a Redis URL (redis://, rediss://, unix:// "
            f"or sentinel://), not {urlsplit(backend_url).scheme}://: the API reads "
            "results and follows their channels in Redis."
        )
    # Behind Sentinels, kombu and Celery name the primary in their transport options.
    service = {"master_name": config["REDIS_SENTINEL_SERVICE"]}
    if is_sentinel(settings["broker_url"]):
        settings["broker_transport_options"] = {
            **service, **settings.get("broker_transport_options", {})
        }  # fmt: skip
    backend_class = "LedgerRedisBackend"
    if is_sentinel(backend_url):
        backend_class = "LedgerSentinelBackend"
        settings["result_backend_transport_options"] = {
            **service, **settings.get("result_backend_transport_options", {})
        }  # fmt: skip
    # Celery reads "<class path>+<url>" as "this backend class at this URL".
    settings["result_backend"] = f"{__name__}:{backend_class}+{backend_url}"
    settings.setdefault("result_expires", config["RESULT_EXPIRES"])
    if not is_sentinel(backend_url):  # Sentinel's pool raises when full: left unbounded
        settings.setdefault("redis_max_connections", config["REDIS_MAX_CONNECTIONS"])
    # One result backend per process, not per thread: Celery's default builds one in each
    # thread that touches it, which under gevent is each request (scanning the installed
    # packages' entry points, then opening connections of its own). The Redis backend's
    # pool is thread-safe; only AsyncResult.get()'s consumer is not, and the API never
    # calls it.
    settings.setdefault("result_backend_thread_safe", True)
    settings.setdefault("task_queues", [Queue(name) for name in config["TASK_QUEUES"]])
    settings.setdefault("task_annotations", [TimeLimitsByKind(config["TASK_TIME_LIMITS"])])
    return settings


class TimeLimitsByKind:
    """``TASK_TIME_LIMITS`` (soft and hard seconds by kind) as a Celery task annotation.

    Annotations set the tasks' own ``soft_time_limit`` and ``time_limit``, so the limits
    hold for a task whoever queued it, and in the worker for a message that carries none.
    """

    def __init__(self, limits: dict[str, dict[str, float]]) -> None:
        self.limits = limits

    def annotate(self, task: Task) -> dict[str, float]:
        """The limits of the task's kind (Celery's annotation protocol)."""
        limit = self.limits.get(getattr(task, "kind", None) or "", {})
        annotation = {"soft_time_limit": limit.get("soft"), "time_limit": limit.get("hard")}
        return {name: seconds for name, seconds in annotation.items() if seconds is not None}


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for ``app``; every task body runs inside its app context."""

    class FlaskTask(Task):
        #: The Flask app whose config and extensions this Celery app's tasks use.
        flask_app = app

        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

        def apply_async(
            self,
            args: Any = None,
            kwargs: Any = None,
            task_id: str | None = None,
            *more: Any,
            **options: Any,
        ) -> Any:
            """Queue the task with Celery's own producer, its ledger entry written first.

            An override rather than the ``before_task_publish`` signal, because Celery
            logs and swallows a signal handler's exception: here a ledger that cannot
            be written stops the publish, and a publish that fails removes the entry.
            ``ledger_entry`` (the API's) replaces the entry made for other callers.
            """
            from .submission import recorded_publish

            entry = options.pop("ledger_entry", None)
            with recorded_publish(self, args, kwargs, task_id, options, entry) as task_id:
                return super().apply_async(args, kwargs, task_id, *more, **options)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(app.config))
    celery_app.steps["consumer"].add(LeaseRenewal)
    celery_app.set_default()
    # Task proxies (``slow_task.delay``, from ``@shared_task``) resolve to the current
    # Celery app: in each request, this app's, even where a process holds several.
    app.before_request(celery_app.set_current)
    app.extensions["celery"] = celery_app
    return celery_app
