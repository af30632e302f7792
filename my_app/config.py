"""Settings: one class of defaults per environment; the factory layers the environment on top."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from .settings import SETTINGS

#: Settings that plain environment variables (``REDIS_URL=...``) override, besides the
#: ``FLASK_``-prefixed form that reaches every setting (declared in my_app.settings).
PLAIN_ENV_SETTINGS = tuple(setting.name for setting in SETTINGS if setting.plain)


class Config:
    """Defaults shared by every environment: each setting's declared default (set below
    from my_app.settings), Celery's settings, and how the libraries are wired."""

    RATELIMIT_HEADERS_ENABLED = True
    API_TITLE = "Background jobs"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_REDOC_PATH = "/redoc"
    # Served from my_app/static/vendor: the docs must work on a machine with no internet.
    OPENAPI_SWAGGER_UI_URL = "/static/vendor/swagger-ui/"
    OPENAPI_REDOC_URL = "/static/vendor/redoc/redoc.standalone.js"

    # Celery settings in Celery's own lower-case names. broker_url defaults to
    # CELERY_BROKER_URL or REDIS_URL, result_backend to REDIS_URL; see
    # celery_app.celery_settings for the few values the service refuses.
    CELERY: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # STARTED comes from the ledger's started_at, which the job writes anyway: Celery's
        # own STARTED would cost every task one more write and publish.
        "task_track_started": False,
        "task_default_queue": "default",
        "broker_connection_retry_on_startup": True,
        # A message a worker holds (late-acked, or fetched ahead) becomes visible to other
        # workers this many seconds after its worker last renewed it: each worker renews
        # what it holds every third of it (my_app.worker.leases), so a dead worker's jobs
        # run again within about 40 s while a living worker's long jobs never run twice
        # (every worker sweeps for them on each renewal: RESTORE_SWEEP).
        "broker_transport_options": {
            "visibility_timeout": 30,
            "socket_connect_timeout": 1.0,
            "socket_timeout": 5.0,
            "retry_on_timeout": True,
            "health_check_interval": 10,
        },
        # One message fetched ahead per process: a long job never holds others back, and
        # a dead worker strands as few as possible.
        "worker_prefetch_multiplier": 1,
        # Keep reconnecting to a broker that is down, however long it stays down.
        "broker_connection_max_retries": None,
        "redis_retry_on_timeout": True,
        "redis_backend_health_check_interval": 10,
        "redis_socket_connect_timeout": 1.0,
        "redis_socket_timeout": 5.0,
        "worker_hijack_root_logger": False,
        # Routing is configuration, so tasks sent by name (celery call, beat) go there too.
        "task_routes": {
            "my_app.tasks.report_task": {"queue": "heavy"},
            "my_app.tasks.thumbnail_task": {"queue": "heavy"},
            "my_app.tasks.video_task": {"queue": "heavy"},
        },
    }


for _setting in SETTINGS:
    if _setting.name != "CELERY":  # Config.CELERY above is the service's Celery defaults
        setattr(Config, _setting.name, copy.deepcopy(_setting.default))


class DevelopmentConfig(Config):
    """Local development: the default."""

    DEBUG = False


class TestingConfig(Config):
    """The test suite: each test session points REDIS_URL at its own private Redis."""

    TESTING = True
    RESULT_EXPIRES = 600
    SUBMIT_RATE_LIMIT = 0
    MAX_ACTIVE_JOBS = 0  # 0: no quota; the quota tests set their own
    MAIL_RETRY_BACKOFF = 0.5
    MAIL_RETRY_BACKOFF_MAX = 1.0
    SLOW_JOB_STEP_SECONDS = 0.5


class ProductionConfig(Config):
    """Production: a real SECRET_KEY and API keys are required (my_app.settings), and a
    real MAIL_SERVER for email."""

    SECRET_KEY = None
    MAIL_SERVER = None
    SESSION_COOKIE_SECURE = True
    HSTS = True


CONFIGS: Mapping[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_class(config: str | type[Config] | None) -> type[Config]:
    """Resolve a config given by class, by name, or (when None) by ``APP_CONFIG``."""
    if isinstance(config, type):
        return config
    name = (config or os.environ.get("APP_CONFIG") or "development").lower()
    try:
        return CONFIGS[name]
    except KeyError:
        choices = ", ".join(CONFIGS)
        raise ValueError(f"Unknown config {name!r}; choose one of {choices}") from None


def plain_env_overrides(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Read the plain environment variables listed in PLAIN_ENV_SETTINGS.

    Values are parsed as JSON when they can be (``RESULT_EXPIRES=60`` is an int), as
    Flask's ``from_prefixed_env`` does.
    """
    overrides: dict[str, Any] = {}
    for name in PLAIN_ENV_SETTINGS:
        if name in environ:
            try:
                overrides[name] = json.loads(environ[name])
            except ValueError:
                overrides[name] = environ[name]
    return overrides
