"""Every setting of the service, declared once: its name, type, default, unit, meaning,
and whether a plain environment variable (``REDIS_URL=...``) sets it, besides the
``FLASK_``-prefixed form that reaches every setting.

``my_app.config`` builds its classes' defaults from this table, ``create_app`` checks the
layered result with ``validate`` (one error that lists every bad setting), and the
README's settings table is generated from it (``python -m my_app.settings``;
``tests/test_settings.py`` fails when the two differ).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The default secret key, refused in production.
DEFAULT_SECRET_KEY = "dev"
#: The kinds of job, whose time limits TASK_TIME_LIMITS sets.
JOB_KINDS = ("slow", "email", "report", "thumbnail", "video")
#: The longest slow job anyone may ask for, in seconds (admins; others MAX_JOB_SECONDS).
SLOW_JOB_MAX_SECONDS = 3600

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Setting:
    """One setting: what it is, its default, and what values it takes."""

    name: str
    type: type
    default: Any
    doc: str
    unit: str | None = None
    #: Set by a plain environment variable of its name, not only ``FLASK_<NAME>``.
    plain: bool = False
    #: None is a valid value (the setting is off or absent).
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    #: The minimum itself is not allowed (a duration that must be above zero).
    exclusive_minimum: bool = False
    choices: tuple[str, ...] | None = None
    #: Checks a valid-typed value; returns what is wrong, or None.
    check: Callable[[Any], str | None] | None = None

    @property
    def env_name(self) -> str:
        """The environment variable that sets it."""
        return self.name if self.plain else f"FLASK_{self.name}"

    def coerce(self, value: Any) -> Any:
        """The value as this setting's type; raises ValueError saying why it cannot be."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("is required")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"must be true or false, not {value!r}")
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"must be a whole number, not {value!r}")
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"must be a whole number, not {value!r}") from None
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"must be a number, not {value!r}")
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"must be a number, not {value!r}") from None
        if self.type is list and isinstance(value, tuple):
            return list(value)
        if not isinstance(value, self.type):
            raise ValueError(f"must be a {self.type.__name__}, not {value!r}")
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        try:
            value = self.coerce(value)
        except ValueError as error:
            return str(error)
        if value is None:
            return None
        if self.minimum is not None:
            below = value <= self.minimum if self.exclusive_minimum else value < self.minimum
            if below:
                relation = "above" if self.exclusive_minimum else "at least"
                return f"must be {relation} {self.minimum:g}, not {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, not {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {value!r}"
        return self.check(value) if self.check else None


def time_limits_problem(limits: dict[str, Any]) -> str | None:
    """TASK_TIME_LIMITS names known kinds, each with positive soft < hard seconds."""
    problems = []
    for kind, limit in limits.items():
        if kind not in JOB_KINDS:
            problems.append(f"{kind!r} is not a kind of job ({', '.join(JOB_KINDS)})")
            continue
        if not isinstance(limit, dict) or set(limit) - {"soft", "hard"}:
            problems.append(f"{kind}: give {{'soft': seconds, 'hard': seconds}}")
            continue
        values = {name: limit.get(name) for name in ("soft", "hard")}
        if any(
            not isinstance(v, int | float) or isinstance(v, bool) or v <= 0
            for v in values.values()
            if v is not None
        ):
            problems.append(f"{kind}: seconds must be numbers above 0")
        elif None not in values.values() and values["soft"] >= values["hard"]:
            problems.append(
                f"{kind}: soft ({values['soft']}) must be below hard ({values['hard']})"
            )
    return "; ".join(problems) or None


def artifact_store_problem(url: str) -> str | None:
    """ARTIFACT_STORE names a filesystem fsspec knows, and its package is installed (an
    s3:// store needs s3fs: the s3 extra)."""
    import fsspec
    from fsspec.core import split_protocol

    protocol = split_protocol(url)[0] or "file"
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as error:
        return f"cannot open {url!r}: {error}"
    return None


def queues_problem(queues: list[Any]) -> str | None:
    """TASK_QUEUES is a non-empty list of distinct names."""
    if not queues or not all(isinstance(q, str) and q for q in queues):
        return "must be a non-empty list of queue names"
    if len(set(queues)) != len(queues):
        return "names a queue twice"
    return None


def hosts_problem(hosts: list[Any]) -> str | None:
    """WEBHOOK_ALLOWED_HOSTS: host names or addresses."""
    if not all(isinstance(host, str) and host and "/" not in host for host in hosts):
        return "must be a list of host names or addresses (no scheme, no path)"
    return None


def default_urls_problem(urls: dict[str, Any]) -> str | None:
    """WEBHOOK_DEFAULT_URLS: an http(s) address for each owner named."""
    from urllib.parse import urlsplit

    for owner, url in urls.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{owner}'s address must be an http:// or https:// URL"
    return None


def _(name: str, type_: type, default: Any, doc: str, **options: Any) -> Setting:
    return Setting(name, type_, default, doc, **options)


SETTINGS: tuple[Setting, ...] = (
    # Where things are.
    _("REDIS_URL", str, "redis://127.0.0.1:6379/0",
      "Redis for the ledger, results, artifacts (and the queue, unless "
      "CELERY_BROKER_URL): redis://, rediss://, unix://, or Redis Sentinels "
      "(sentinel://h1:26379/0;sentinel://h2:26379/0); `make up` starts one there if "
      "nothing answers", plain=True),
    _("REDIS_SENTINEL_SERVICE", str, "mymaster",
      "the primary the Sentinels monitor, when REDIS_URL names Sentinels", plain=True),
    _("CELERY_BROKER_URL", str, None,
      "Celery's broker when it is not REDIS_URL: another Redis, or RabbitMQ "
      "(amqp://user:pass@rabbit:5672//)", plain=True, optional=True),
    _("TASK_QUEUES", list, ["default", "heavy"],
      "the queues declared as Celery's task_queues; report, thumbnail and video jobs go "
      "to heavy", check=queues_problem),
    # Who may do what.
    _("SECRET_KEY", str, DEFAULT_SECRET_KEY,
      "Flask's secret (the sign-in cookie); production refuses the default", plain=True,
      optional=True),
    _("API_KEYS", str, None,
      "API keys, name:secret or name:secret:admin, separated by commas or lines; unset "
      "(and no API_KEYS_FILE), every caller is one anonymous owner", plain=True,
      optional=True),
    _("API_KEYS_FILE", str, None, "a file of the same entries, one per line (# comments)",
      plain=True, optional=True),
    _("ALLOW_ANONYMOUS", bool, False,
      "let production run without API keys (an open, anonymous API)", plain=True),
    _("DEFAULT_OWNER", str, "public",
      "owner of tasks queued outside the HTTP API (a shell, celery call, beat, Flower); "
      "without keys, every caller", plain=True),
    _("METRICS_TOKEN", str, None,
      "a Bearer token for GET /metrics (an admin key works too)", plain=True,
      optional=True),
    _("TRUSTED_PROXIES", int, 0,
      "proxies in front that set X-Forwarded-For (werkzeug's ProxyFix); 0: the "
      "connecting address counts", plain=True, minimum=0),
    _("SESSION_COOKIE_SECURE", bool, False,
      "the sign-in cookie only over HTTPS (true in production)"),
    _("SESSION_COOKIE_SAMESITE", str, "Strict", "the sign-in cookie's SameSite",
      choices=("Strict", "Lax")),
    _("HSTS", bool, False,
      "send Strict-Transport-Security on HTTPS requests (true in production)"),
    # Quotas and limits.
    _("MAX_ACTIVE_JOBS", int, 100,
      "jobs a non-admin owner may have queued or running at once (429 beyond); 0: no "
      "quota", minimum=0),
    _("MAX_INPUT_BYTES", int, 1024 * 1024,
      "inputs one submission may store (413 beyond)", unit="bytes", minimum=1),
    _("MAX_JOB_SECONDS", int, 600,
      f"the longest slow job a non-admin may ask for (422 beyond; an admin, up to "
      f"{SLOW_JOB_MAX_SECONDS})", unit="seconds", minimum=0,
      maximum=SLOW_JOB_MAX_SECONDS),
    _("SUBMIT_RATE_LIMIT", int, 600,
      "submissions an owner (its key; without keys, a client address) may make a minute "
      "(429 beyond); admins are exempt; 0: no limit", minimum=0),
    _("MAX_CONTENT_LENGTH", int, 16 * 1024 * 1024, "largest request body (413 beyond)",
      unit="bytes", minimum=1),
    _("MAX_UPLOAD_BYTES", int, 10 * 1024 * 1024, "largest image upload (413 beyond)",
      unit="bytes", minimum=1),
    _("MAX_IMAGE_PIXELS", int, 40_000_000,
      "most pixels an uploaded image may have (422 beyond)", minimum=1),
    _("MAX_VIDEO_UPLOAD_BYTES", int, 1024 * 1024 * 1024,
      "largest video upload (413 beyond); it streams to the artifact store, never held "
      "in memory", unit="bytes", minimum=1),
    _("MAX_VIDEO_SECONDS", float, 600.0, "longest video accepted (422 beyond)",
      unit="seconds", minimum=0, exclusive_minimum=True),
    _("MAX_VIDEO_PIXELS", int, 3840 * 2160,
      "most pixels a video's frame may have (422 beyond)", minimum=1),
    _("ARTIFACT_MAX_BYTES", int, 2 * 1024 * 1024 * 1024, "largest file a job may store",
      unit="bytes", minimum=1),
    _("ARTIFACT_STORE", str, "var/artifacts",
      "where artifacts and uploads live, as an fsspec URL: a directory (one machine), "
      "or s3://bucket/prefix (several; credentials from the AWS_* variables)",
      plain=True, check=artifact_store_problem),
    _("ARTIFACT_STORE_OPTIONS", dict, {},
      "the store's fsspec options, e.g. FLASK_ARTIFACT_STORE_OPTIONS__endpoint_url="
      "http://minio:9000 for an S3-compatible server"),
    _("ARTIFACT_SWEEP_SECONDS", float, 30.0,
      "how often each worker deletes the artifacts and uploads of expired tasks",
      unit="seconds", minimum=0, exclusive_minimum=True),
    _("IDEMPOTENCY_TTL", int, 24 * 3600, "how long an Idempotency-Key is remembered",
      unit="seconds", minimum=1),
    _("RESULT_EXPIRES", int, 24 * 3600,
      "how long a task's result, ledger entry and artifacts are kept", unit="seconds",
      plain=True, minimum=1),
    _("TASK_TIME_LIMITS", dict,
      {"slow": {"soft": 3660, "hard": 3720}, "email": {"soft": 120, "hard": 150},
       "report": {"soft": 300, "hard": 330}, "thumbnail": {"soft": 300, "hard": 330},
       "video": {"soft": 1800, "hard": 1860}},
      "soft and hard limits of each kind of job: at soft it fails with \"time limit "
      "exceeded\", at hard its process is killed; e.g. "
      "FLASK_TASK_TIME_LIMITS__report__soft=60", unit="seconds",
      check=time_limits_problem),
    # Redis.
    _("REDIS_CONNECT_TIMEOUT", float, 1.0,
      "to reach Redis before the API answers 503", unit="seconds", minimum=0,
      exclusive_minimum=True),
    _("REDIS_SOCKET_TIMEOUT", float, 5.0,
      "to wait for a Redis reply, and for a free pooled connection", unit="seconds",
      minimum=0, exclusive_minimum=True),
    _("REDIS_MAX_CONNECTIONS", int, 10,
      "connections in each of a process's three Redis pools (ledger, artifacts, "
      "results); a request waits for a free one", minimum=1),
    _("REDIS_OUTAGE_GRACE_SECONDS", float, 60.0,
      "how long a worker waits for Redis (down, or full) before a Redis call, and with "
      "it the running job, fails; the web answers 503 at once meanwhile",
      unit="seconds", minimum=0),
    _("STORAGE_HEADROOM_PERCENT", float, 10.0,
      "of Redis's maxmemory kept for accepted jobs: with less free, submissions answer "
      "503 \"Storage is full\" and /readyz is 503", unit="percent", minimum=0,
      maximum=100),
    # Workers and tasks.
    _("TASK_EVENTS", bool, False,
      "send Celery's task events (task-sent from producers, task-received/started/... "
      "from workers) for a monitor to see jobs from the moment they are queued; each "
      "is a publish (Flower turns the workers' on by itself)", plain=True),
    _("RESTORE_SWEEP", bool, True,
      "each worker puts back a dead worker's messages on every lease renewal; off, "
      "kombu's own sweep does, about every 100 s"),
    _("LOST_CHECK_AFTER_SECONDS", float, 10.0,
      "how long a task waits, untaken, before the API checks that its message is still "
      "queued (a purged or lost message shows as LOST)", unit="seconds", minimum=0,
      exclusive_minimum=True),
    _("PROGRESS_INTERVAL_SECONDS", float, 0.25,
      "how often a job of many small steps (a video's frames) reports progress and "
      "checks for a cancel", unit="seconds", minimum=0.01, maximum=1.0),
    _("SLOW_JOB_STEP_SECONDS", float, 1.0,
      "how long one step (\"second\") of the slow job takes", unit="seconds",
      minimum=0, exclusive_minimum=True),
    # Schedules.
    _("BEAT_MAX_LOOP_SECONDS", float, 5.0,
      "the longest beat sleeps between looks at its schedule: a schedule created or "
      "resumed runs at most this late; a second beat takes over five times this after "
      "the first stops", unit="seconds", minimum=0.5, maximum=300),
    _("MAX_RUN_AT_SECONDS", int, 30 * 24 * 3600,
      "how far ahead a one-off job (run_at, countdown) may be held (422 beyond)",
      unit="seconds", minimum=1),
    # Webhooks.
    _("WEBHOOK_ALLOWED_HOSTS", list, [],
      "hosts a callback_url may name although they are private, loopback or link-local "
      "(e.g. [\"hooks.internal\", \"127.0.0.1\"]); any other such target is refused",
      check=hosts_problem),
    _("WEBHOOK_DEFAULT_URLS", dict, {},
      "a callback_url for each owner's submissions that name none, e.g. "
      "FLASK_WEBHOOK_DEFAULT_URLS__alice=https://alice.example/hooks",
      check=default_urls_problem),
    _("WEBHOOK_TIMEOUT_SECONDS", float, 10.0,
      "to connect to a receiver, and to wait for each part of its answer",
      unit="seconds", minimum=0, exclusive_minimum=True),
    _("WEBHOOK_MAX_ANSWER_BYTES", int, 64 * 1024,
      "of a receiver's answer read (the rest is dropped)", unit="bytes", minimum=0),
    _("WEBHOOK_MAX_ATTEMPTS", int, 8, "deliveries tried before a webhook is failed",
      minimum=1),
    _("WEBHOOK_RETRY_BACKOFF", float, 2.0,
      "first wait before a failed delivery is tried again (about this·2^n, jittered)",
      unit="seconds", minimum=0, exclusive_minimum=True),
    _("WEBHOOK_RETRY_BACKOFF_MAX", float, 600.0, "the backoff's cap", unit="seconds",
      minimum=0, exclusive_minimum=True),
    _("WEBHOOK_SECRET_GRACE_SECONDS", int, 24 * 3600,
      "how long the previous signing secret still signs after a rotation",
      unit="seconds", minimum=0),
    # Event streams.
    _("EVENTS_HEARTBEAT_SECONDS", float, 15.0,
      "how often an idle event stream sends a keep-alive comment", unit="seconds",
      minimum=0, exclusive_minimum=True),
    _("EVENTS_CLIENT_CHECK_SECONDS", float, 1.0,
      "how often a waiting event stream checks that its client is still there",
      unit="seconds", minimum=0.05),
    # Logs and tracing.
    _("LOG_FORMAT", str, "text",
      "json: one JSON object per line from the web server and the worker, with "
      "request_id and task_id; text: the usual lines", plain=True,
      choices=("text", "json")),
    _("LOG_LEVEL", str, "INFO", "the lowest level logged", plain=True,
      choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    _("OTEL_ENABLED", bool, False,
      "trace requests and tasks with OpenTelemetry (the otel extra); also on whenever "
      "OTEL_SERVICE_NAME is set"),
    # Email.
    _("MAIL_SERVER", str, "127.0.0.1",
      "SMTP server email jobs send through (default: the dev sink; none in production)",
      plain=True, optional=True),
    _("MAIL_PORT", int, 8025, "its port (and the port the dev sink listens on)",
      plain=True, minimum=1, maximum=65535),
    _("MAIL_USERNAME", str, None, "SMTP login, if the server wants one", plain=True,
      optional=True),
    _("MAIL_PASSWORD", str, None, "its password", plain=True, optional=True),
    _("MAIL_USE_TLS", bool, False, "STARTTLS", plain=True),
    _("MAIL_USE_SSL", bool, False, "SMTP over TLS from the start", plain=True),
    _("MAIL_DEFAULT_SENDER", str, "jobs@localhost", "the From address", plain=True),
    _("MAIL_TIMEOUT", float, 30.0, "how long an SMTP conversation may stall",
      unit="seconds", plain=True, minimum=0, exclusive_minimum=True),
    _("MAIL_MAX_RETRIES", int, 5, "retries of a transiently failing email", minimum=0),
    _("MAIL_RETRY_BACKOFF", float, 5.0,
      "first backoff of a retried email (about this·2^n, jittered)", unit="seconds",
      minimum=0, exclusive_minimum=True),
    _("MAIL_RETRY_BACKOFF_MAX", float, 300.0, "the backoff's cap", unit="seconds",
      minimum=0, exclusive_minimum=True),
    _("MAIL_SINK_DIR", str, "var/mail", "where the dev sink saves messages", plain=True),
    # Celery.
    _("CELERY", dict, None,
      "any Celery setting in Celery's lower-case name, e.g. "
      "FLASK_CELERY__task_compression=gzip (see my_app/config.py for the service's "
      "defaults, and below for the three it refuses)"),
)  # fmt: skip

BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}


class SettingsError(ValueError):
    """One or more settings are wrong; the message lists each."""


def validate(config: Mapping[str, Any], *, production: bool) -> dict[str, Any]:
    """Check every declared setting in ``config``; returns them coerced to their types
    (``"5"`` from the environment becomes 5). Raises ``SettingsError`` listing every
    problem at once."""
    problems: list[str] = []
    coerced: dict[str, Any] = {}
    for setting in SETTINGS:
        value = config.get(setting.name)
        problem = setting.problem(value)
        if problem:
            problems.append(f"{setting.env_name} {problem}")
        else:
            coerced[setting.name] = setting.coerce(value)
    if production:
        problems += production_problems({**config, **coerced})
    if problems:
        raise SettingsError(
            "The service cannot start with these settings:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    return coerced


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """What production refuses: the default secret key, and no API keys unless
    ALLOW_ANONYMOUS says so."""
    problems = []
    if not config["SECRET_KEY"] or config["SECRET_KEY"] == DEFAULT_SECRET_KEY:
        problems.append(
            "SECRET_KEY must be set in production, to a long random string, e.g. "
            "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if not (config["API_KEYS"] or config["API_KEYS_FILE"]) and not config["ALLOW_ANONYMOUS"]:
        problems.append(
            "API_KEYS (or API_KEYS_FILE) must be set in production, or ALLOW_ANONYMOUS=1 "
            "to run an open, anonymous API on purpose"
        )
    return problems


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| setting | default | unit | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = "see `Config.CELERY`" if setting.name == "CELERY" else _shown(setting.default)
        rows.append(f"| `{setting.env_name}` | {default} | {setting.unit or ''} | {setting.doc} |")
    return "\n".join(rows)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list):
        import json

        return f"`{json.dumps(value, separators=(',', ':'))}`"
    return f"`{value}`"


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
