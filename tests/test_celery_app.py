"""Celery bound to Flask: tasks run in the app context, settings come from the app."""

from __future__ import annotations

from support import config_value

from my_app.celery_app import SubmitOnlyRedisBackend


def test_task_body_reads_the_flask_config_through_a_real_worker(app):
    result = config_value.delay("GREETING")
    assert result.get(timeout=20) == "hello from the test app"


def test_celery_app_is_configured_from_the_flask_config(app):
    celery_app = app.extensions["celery"]
    assert celery_app.conf.broker_url == app.config["REDIS_URL"]
    assert celery_app.conf.result_expires == app.config["RESULT_EXPIRES"]
    assert isinstance(celery_app.backend, SubmitOnlyRedisBackend)
    assert celery_app.conf.accept_content == ["json"]
