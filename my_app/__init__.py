"""A Flask + Celery + Redis service that runs heavy work in the background."""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Config, ProductionConfig, config_class, plain_env_overrides
from .settings import validate


def create_app(config: str | type[Config] | None = None, **settings: Any) -> Flask:
    """Build the app.

    Settings come from the config class (by class, by name, or ``APP_CONFIG``), then the
    plain environment variables (``REDIS_URL``, ``SECRET_KEY``, ...) and every ``FLASK_*``
    one, then ``settings``; then every setting is checked (my_app.settings), and one
    ``SettingsError`` lists all that are wrong.
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # keep records in their natural order
    chosen = config_class(config)
    app.config.from_object(chosen)
    # The class's dicts are shared; FLASK_CELERY__* and other nested variables must not
    # change them in place.
    for name in (
        "CELERY",
        "TASK_TIME_LIMITS",
        "ARTIFACT_STORE_OPTIONS",
        "WEBHOOK_ALLOWED_HOSTS",
        "WEBHOOK_DEFAULT_URLS",
    ):
        app.config[name] = copy.deepcopy(getattr(chosen, name))
    app.config.update(plain_env_overrides())
    app.config.from_prefixed_env()
    app.config.update(settings)
    app.config.update(validate(app.config, production=issubclass(chosen, ProductionConfig)))
    if app.config["TRUSTED_PROXIES"]:
        # X-Forwarded-For is believed only as far as the proxies we were told about.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["TRUSTED_PROXIES"]))

    register_extensions(app)
    register_blueprints(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind authentication, security headers, Redis, Celery, the rate limiter, the API and
    error handling to the app."""
    from . import (
        auth,
        lifecycle,  # noqa: F401  connects the hooks that write each task's life
        tasks,  # noqa: F401  registers the tasks with the app's Celery
    )
    from .celery_app import celery_init_app
    from .errors import register_error_handlers
    from .extensions import NoSessions, api, limiter, redis_client
    from .live.fanout import Fanout
    from .ops import logs, metrics, security_headers, tracing
    from .store.artifacts import ArtifactStore
    from .store.redis_connections import limiter_storage_uri

    # First: a request id for every log line, then a request without a valid key is
    # refused before anything else runs.
    logs.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)
    if not app.extensions["api_keys"]:
        app.session_interface = NoSessions()  # nobody signs in: no cookie to sign
    celery_app = celery_init_app(app)
    redis_client.init_app(app)
    app.extensions["artifacts"] = ArtifactStore(
        app.config["ARTIFACT_STORE"], app.config["ARTIFACT_STORE_OPTIONS"]
    )
    app.extensions["fanout"] = Fanout(celery_app.backend)  # one subscription per process
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI",
        limiter_storage_uri(app.config["REDIS_URL"], app.config["REDIS_SENTINEL_SERVICE"]),
    )
    limiter.init_app(app)
    api.init_app(app)
    security_headers.init_app(app, production=app.config["HSTS"])
    tracing.init_app(app)
    register_error_handlers(app)


def register_blueprints(app: Flask) -> None:
    """Mount the API, the quick-start routes and the browser UI."""
    from .api.events import blp as events_blueprint
    from .api.jobs import blp as jobs_blueprint
    from .api.run_task import blp as run_task_blueprint
    from .api.schedules import blp as schedules_blueprint
    from .api.system import blp as system_blueprint
    from .api.tasks import blp as tasks_blueprint
    from .api.webhooks import blp as webhooks_blueprint
    from .api.workflows import blp as workflows_blueprint
    from .api.workflows import uploads as uploads_blueprint
    from .extensions import api
    from .ops.health import bp as health_blueprint
    from .ops.metrics import bp as metrics_blueprint
    from .ui import bp as ui_blueprint

    api.register_blueprint(jobs_blueprint)
    api.register_blueprint(tasks_blueprint)
    api.register_blueprint(uploads_blueprint)
    api.register_blueprint(workflows_blueprint)
    api.register_blueprint(schedules_blueprint)
    api.register_blueprint(webhooks_blueprint)
    api.register_blueprint(events_blueprint)
    api.register_blueprint(run_task_blueprint)
    api.register_blueprint(system_blueprint)
    app.register_blueprint(ui_blueprint)
    app.register_blueprint(health_blueprint)
    app.register_blueprint(metrics_blueprint)
