"""Celery bound to Flask: the app-context Task and a Celery app configured from ``CELERY``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from celery import Celery, Task
from flask import Flask
from kombu import Exchange, Queue

from .store.keys import BEAT_PREFIX
from .store.redis_connections import SENTINEL_SCHEME, is_sentinel, redbeat_settings
from .store.results import SubmitOnlyRedisBackend
from .worker.artifact_sweep import ArtifactSweep
from .worker.leases import LeaseRenewal
from .worker.outages import result_backend_retries

__all__ = ["SubmitOnlyRedisBackend", "celery_init_app", "celery_settings"]


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
    # A worker's result (progress, the final state) waits out a Redis outage or a full
    # Redis (my_app.worker.outages); the web stores none, so only workers wait.
    for name, value in result_backend_retries(config["REDIS_OUTAGE_GRACE_SECONDS"]).items():
        if isinstance(value, dict):  # transport options: the configured ones win
            settings[name] = {**value, **settings.get(name, {})}
        else:
            settings.setdefault(name, value)
    backend_class = "LedgerRedisBackend"
    if is_sentinel(backend_url):
        backend_class = "LedgerSentinelBackend"
        settings["result_backend_transport_options"] = {
            **service, **settings.get("result_backend_transport_options", {})
        }  # fmt: skip
    # Celery reads "<class path>+<url>" as "this backend class at this URL"; the class
    # files each task's end in the ledger (my_app.lifecycle).
    settings["result_backend"] = f"my_app.lifecycle:{backend_class}+{backend_url}"
    settings.setdefault("result_expires", config["RESULT_EXPIRES"])
    if not is_sentinel(backend_url):  # Sentinel's pool raises when full: left unbounded
        settings.setdefault("redis_max_connections", config["REDIS_MAX_CONNECTIONS"])
    # One result backend per process, not per thread: Celery's default builds one in each
    # thread that touches it, which under gevent is each request (scanning the installed
    # packages' entry points, then opening connections of its own). The Redis backend's
    # pool is thread-safe; only AsyncResult.get()'s consumer is not, and the API never
    # calls it.
    settings.setdefault("result_backend_thread_safe", True)
    # Each queue bound to an exchange of its own name by its own name: a Queue given only
    # a name is bound to the default exchange by the default routing key, so a message
    # for "default" reached every queue declared that way.
    settings.setdefault(
        "task_queues",
        [Queue(name, Exchange(name), routing_key=name) for name in config["TASK_QUEUES"]],
    )
    # Task events (task-sent, task-received, ...) cost every job a publish each; they are
    # on where a monitor watches (TASK_EVENTS; Flower turns the workers' on by itself).
    settings.setdefault("task_send_sent_event", config["TASK_EVENTS"])
    settings.setdefault("worker_send_task_events", config["TASK_EVENTS"])
    settings.setdefault("task_annotations", [TimeLimitsByKind(config["TASK_TIME_LIMITS"])])
    # A full Redis answers writes with an error reply (a kombu channel error), which
    # Celery would take for unrecoverable and exit on: the consumer restarts instead and
    # waits for room (docs/scaling.md, "A full Redis").
    settings.setdefault("broker_channel_error_retry", True)
    # Beat runs celery-redbeat's scheduler, its entries and lock in the ledger's Redis
    # (my_app.schedules; beat itself waits out a Redis outage, the web answers 503).
    settings.setdefault("beat_scheduler", "my_app.schedules:ScheduleRunner")
    settings.setdefault("beat_max_loop_interval", config["BEAT_MAX_LOOP_SECONDS"])
    settings.setdefault("redbeat_key_prefix", BEAT_PREFIX)
    redbeat_options = {
        "socket_connect_timeout": config["REDIS_CONNECT_TIMEOUT"],
        "socket_timeout": config["REDIS_SOCKET_TIMEOUT"],
    }
    redbeat = redbeat_settings(config["REDIS_URL"], config["REDIS_SENTINEL_SERVICE"],
                               redbeat_options)  # fmt: skip
    for name, value in redbeat.items():
        settings.setdefault(name, value)
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

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(app.config))
    celery_app.steps["consumer"].add(LeaseRenewal)
    celery_app.steps["consumer"].add(ArtifactSweep)
    celery_app.set_default()
    # Task proxies (``slow_task.delay``, from ``@shared_task``) resolve to the current
    # Celery app: in each request, this app's, even where a process holds several.
    app.before_request(celery_app.set_current)
    app.extensions["celery"] = celery_app
    return celery_app
