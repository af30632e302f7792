"""A Flask + Celery + Redis service that runs heavy work in the background."""

from __future__ import annotations

import copy
from typing import Any

from .application import Flask
from .config import (
    Config,
    ProductionConfig,
    check_production_settings,
    config_class,
    plain_env_overrides,
)


def create_app(config: str | type[Config] | None = None, **settings: Any) -> Flask:
    """Build the app.

    Settings come from the config class (by class, by name, or ``APP_CONFIG``), then
    ``REDIS_URL``/``SECRET_KEY``/``RESULT_EXPIRES`` and every ``FLASK_*`` environment
    variable, then ``settings``.
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # keep records in their natural order, and skip the sort
    chosen = config_class(config)
    app.config.from_object(chosen)
    # The class's dict is shared; FLASK_CELERY__* variables must not change it in place.
    app.config["CELERY"] = copy.deepcopy(chosen.CELERY)
    app.config.update(plain_env_overrides())
    app.config.from_prefixed_env()
    app.config.update(settings)
    if issubclass(chosen, ProductionConfig):
        check_production_settings(app.config)

    register_extensions(app)
    register_blueprints(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind Redis, Celery, the API and error handling to the app."""
    from . import tasks  # noqa: F401  registers the tasks with the app's Celery
    from .celery_app import celery_init_app
    from .errors import register_error_handlers
    from .extensions import NoSessions, api, redis_client

    app.session_interface = NoSessions()
    redis_client.init_app(app)
    celery_init_app(app)
    api.init_app(app)
    register_error_handlers(app)


def register_blueprints(app: Flask) -> None:
    """Mount the API, the seed routes and the browser UI."""
    from .api.jobs import blp as jobs_blueprint
    from .api.tasks import blp as tasks_blueprint
    from .extensions import api
    from .run_task import blp as run_task_blueprint
    from .ui import bp as ui_blueprint

    api.register_blueprint(jobs_blueprint)
    api.register_blueprint(tasks_blueprint)
    api.register_blueprint(run_task_blueprint)
    app.register_blueprint(ui_blueprint)
