"""Settings: one class of defaults per environment; the factory layers the environment on top."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

DEFAULT_SECRET_KEY = "dev"

#: Settings that plain environment variables (``REDIS_URL=...``) override, besides the
#: ``FLASK_``-prefixed form that reaches every setting.
PLAIN_ENV_SETTINGS = (
    "LOG_FORMAT",
    "LOG_LEVEL",
    "API_KEYS",
    "API_KEYS_FILE",
    "METRICS_TOKEN",
    "REDIS_URL",
    "REDIS_SENTINEL_SERVICE",
    "CELERY_BROKER_URL",
    "TASK_EVENTS",
    "TRUSTED_PROXIES",
    "SECRET_KEY",
    "RESULT_EXPIRES",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_USE_TLS",
    "MAIL_USE_SSL",
    "MAIL_DEFAULT_SENDER",
    "MAIL_TIMEOUT",
)


class Config:
    """Defaults shared by every environment."""

    SECRET_KEY = DEFAULT_SECRET_KEY
    #: "json": one JSON object per log line (web and worker), with request_id and task_id;
    #: "text": the usual lines.
    LOG_FORMAT = "text"
    LOG_LEVEL = "INFO"
    #: API keys, "name:secret" or "name:secret:admin", separated by commas or lines. Unset
    #: (and no API_KEYS_FILE), every caller is one anonymous owner: development only.
    API_KEYS: str | None = None
    #: A file of the same entries, one per line ("#" starts a comment).
    API_KEYS_FILE: str | None = None
    #: Trace requests and tasks with OpenTelemetry (the "otel" extra); also on whenever
    #: OTEL_SERVICE_NAME is set.
    OTEL_ENABLED = False
    #: A Bearer token for GET /metrics (an admin API key works too).
    METRICS_TOKEN: str | None = None
    # The browser's session cookie (set when it signs in with a key).
    SESSION_COOKIE_SAMESITE = "Strict"
    SESSION_COOKIE_SECURE = False
    #: Send Strict-Transport-Security on HTTPS requests (directly or X-Forwarded-Proto).
    HSTS = False
    #: Quotas for each owner but an admin: jobs queued or running at once (429 beyond),
    #: bytes of inputs one submission may store (413 beyond), and the longest slow job.
    MAX_ACTIVE_JOBS = 100  # 0 means no quota
    MAX_INPUT_BYTES = 1024 * 1024
    MAX_JOB_SECONDS = 600
    #: The Redis that holds the ledger, results and artifacts (and, by default, the queue):
    #: redis://, rediss://, unix://, or Redis Sentinels, sentinel://host:26379/0;sentinel://...
    REDIS_URL = "redis://127.0.0.1:6379/0"
    #: The primary the Sentinels monitor, when REDIS_URL names Sentinels.
    REDIS_SENTINEL_SERVICE = "mymaster"
    #: Celery's broker, when it is not REDIS_URL: another Redis, or RabbitMQ (amqp://...).
    CELERY_BROKER_URL: str | None = None
    #: Whose tasks those are that were queued outside the HTTP API (a shell, celery call,
    #: beat, Flower, another service).
    DEFAULT_OWNER = "public"
    #: Proxies in front of the web server that set X-Forwarded-For (werkzeug's ProxyFix);
    #: 0 trusts no proxy and counts the connecting address.
    TRUSTED_PROXIES = 0
    #: The queues workers consume; report and thumbnail jobs go to "heavy".
    TASK_QUEUES = ("default", "heavy")
    #: Seconds one step of the slow job takes (a "second" of ``seconds``); the test suite
    #: shortens it.
    SLOW_JOB_STEP_SECONDS = 1.0
    #: Send Celery's task events (task-sent from producers, task-received/started/
    #: succeeded/... from workers), for a monitor such as Flower to see every job from the
    #: moment it is queued. Off by default: each event is a publish, and nobody listens.
    #: Flower turns the workers' events on by itself; task-sent needs this on.
    TASK_EVENTS = False
    #: Each worker puts back, every third of the visibility timeout, the messages whose
    #: worker died (my_app.worker.leases). Off, kombu's own sweep does it about every
    #: 100 s: only for the test that shows the difference.
    RESTORE_SWEEP = True
    #: Seconds a task may sit QUEUED, unseen by any worker, before the API checks that its
    #: message is still in its queue (a purged or lost message shows as LOST).
    LOST_CHECK_AFTER_SECONDS = 10.0
    # Seconds a task's result, ledger entry and artifacts are kept after submission.
    RESULT_EXPIRES = 24 * 3600
    #: Percent of Redis's maxmemory kept for the jobs already accepted: with less free,
    #: submissions answer 503 "storage is full" and /readyz is 503 (my_app.store.capacity).
    #: Redis must run with maxmemory-policy noeviction.
    STORAGE_HEADROOM_PERCENT = 10.0
    #: Seconds a worker waits for Redis to come back before a Redis call fails (and
    #: with it the running job): progress, cancel checks, results, heartbeats. The web
    #: answers 503 at once meanwhile (my_app.worker.outages).
    REDIS_OUTAGE_GRACE_SECONDS = 60.0
    # Seconds a client connecting to Redis waits before the API answers 503.
    REDIS_CONNECT_TIMEOUT = 1.0
    REDIS_SOCKET_TIMEOUT = 5.0
    # Connections per pool, shared by all of a process's requests: the ledger's, the
    # artifacts' and the results' (three pools a process; callers wait for a free one).
    REDIS_MAX_CONNECTIONS = 10
    # How often an idle event stream sends a comment, so proxies keep it open.
    EVENTS_HEARTBEAT_SECONDS = 15.0
    # How often a waiting event stream checks that its client is still there.
    EVENTS_CLIENT_CHECK_SECONDS = 1.0
    # How long an Idempotency-Key is remembered.
    IDEMPOTENCY_TTL = 24 * 3600
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    # Submissions an owner (its API key; without keys, a client address) may make a
    # minute; 0 means no limit. Counted by Flask-Limiter in RATELIMIT_STORAGE_URI
    # (default: REDIS_URL).
    SUBMIT_RATE_LIMIT = 600
    RATELIMIT_HEADERS_ENABLED = True

    # Files jobs produce and images users upload live in Redis, so cap them.
    ARTIFACT_MAX_BYTES = 20 * 1024 * 1024
    MAX_UPLOAD_BYTES = 10 * 1024 * 1024
    MAX_IMAGE_PIXELS = 40_000_000

    # Seconds each kind of job may run: at "soft" it is stopped and fails with "time limit
    # exceeded"; at "hard" its process is killed. The slow job runs up to an hour. They
    # become the tasks' own limits (task_annotations), so every producer's tasks get them.
    TASK_TIME_LIMITS: dict[str, dict[str, float]] = {
        "slow": {"soft": 3660, "hard": 3720},
        "email": {"soft": 120, "hard": 150},
        "report": {"soft": 300, "hard": 330},
        "thumbnail": {"soft": 300, "hard": 330},
    }

    # SMTP: by default the local sink that `make up` runs (python -m my_app.mail_sink).
    MAIL_SERVER: str | None = "127.0.0.1"
    MAIL_PORT = 8025
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_DEFAULT_SENDER = "jobs@localhost"
    MAIL_TIMEOUT = 30.0
    # Transient failures retry after about MAIL_RETRY_BACKOFF·2^n seconds, n = 0, 1, ...
    MAIL_MAX_RETRIES = 5
    MAIL_RETRY_BACKOFF = 5.0
    MAIL_RETRY_BACKOFF_MAX = 300.0
    MAIL_SINK_DIR = "var/mail"

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
        },
    }


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
    """Production: a real SECRET_KEY is required, and a real MAIL_SERVER for email."""

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


def check_production_settings(settings: Mapping[str, Any]) -> None:
    """Refuse to run production with a missing or default secret key."""
    secret = settings.get("SECRET_KEY")
    if not secret or secret == DEFAULT_SECRET_KEY:
        raise RuntimeError(
            "ProductionConfig needs a SECRET_KEY: set the SECRET_KEY environment variable "
            "to a long random string, e.g. "
            "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
