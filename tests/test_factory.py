"""The factory: config classes, environment overrides, production's secret check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from my_app import create_app
from my_app.config import DevelopmentConfig, ProductionConfig, TestingConfig
from my_app.settings import SettingsError


def test_development_is_the_default(monkeypatch):
    monkeypatch.delenv("APP_CONFIG", raising=False)
    app = create_app()
    assert not app.testing
    assert app.config["REDIS_URL"] == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("name", "cls"),
    [("development", DevelopmentConfig), ("testing", TestingConfig)],
)
def test_config_chosen_by_name_or_class(name, cls):
    assert create_app(name).config["TESTING"] == create_app(cls).config["TESTING"]


def test_app_config_environment_variable_chooses_the_class(monkeypatch):
    monkeypatch.setenv("APP_CONFIG", "testing")
    assert create_app().testing


def test_unknown_config_name_is_refused():
    with pytest.raises(ValueError, match="Unknown config 'staging'"):
        create_app("staging")


def test_environment_overrides_settings(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("RESULT_EXPIRES", "60")
    monkeypatch.setenv("FLASK_EVENTS_HEARTBEAT_SECONDS", "2.5")
    monkeypatch.setenv("FLASK_CELERY__worker_max_tasks_per_child", "7")
    app = create_app("testing")
    assert app.config["RESULT_EXPIRES"] == 60
    assert app.config["EVENTS_HEARTBEAT_SECONDS"] == 2.5
    celery_conf = app.extensions["celery"].conf
    assert celery_conf.broker_url == "redis://127.0.0.1:6390/3"
    assert celery_conf.result_backend.endswith("+redis://127.0.0.1:6390/3")
    assert celery_conf.result_expires == 60
    assert celery_conf.worker_max_tasks_per_child == 7
    # The class's own settings are untouched for the next app.
    assert "worker_max_tasks_per_child" not in TestingConfig.CELERY


def test_the_broker_may_be_any_celery_broker(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    celery_conf = create_app("testing").extensions["celery"].conf
    assert celery_conf.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert celery_conf.result_backend.endswith("+redis://127.0.0.1:6390/3")
    monkeypatch.delenv("CELERY_BROKER_URL")
    monkeypatch.setenv("FLASK_CELERY__broker_url", "redis://127.0.0.1:6391/5")
    assert create_app("testing").extensions["celery"].conf.broker_url == "redis://127.0.0.1:6391/5"


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("task_always_eager", True, "task_always_eager"),
        ("task_ignore_result", True, "task_ignore_result"),
        ("result_backend", "db+sqlite:///results.db", "result_backend"),
    ],
)
def test_celery_settings_the_service_cannot_honour_are_refused_by_name(setting, value, words):
    with pytest.raises(ValueError, match=words):
        create_app("testing", CELERY={**TestingConfig.CELERY, setting: value})


def test_the_tasks_carry_their_policy(monkeypatch):
    monkeypatch.setenv("FLASK_TASK_TIME_LIMITS__report__soft", "60")
    celery_app = create_app("testing").extensions["celery"]
    report = celery_app.tasks["my_app.tasks.report_task"]
    assert (report.soft_time_limit, report.time_limit) == (60, 330)
    assert celery_app.tasks["my_app.tasks.slow_task"].time_limit == 3720
    assert {queue.name for queue in celery_app.conf.task_queues} == {"default", "heavy"}


def test_production_refuses_the_default_secret(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("API_KEYS", "ops:ops-secret")
    with pytest.raises(SettingsError, match="SECRET_KEY must be set in production"):
        create_app(ProductionConfig)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app("production", SECRET_KEY="dev")


def test_production_starts_with_a_real_secret(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "a-long-random-production-secret")
    monkeypatch.setenv("API_KEYS", "ops:ops-secret")
    app = create_app("production")
    assert app.config["SECRET_KEY"] == "a-long-random-production-secret"
    assert not app.debug


def test_factory_keeps_celery_in_extensions():
    app = create_app("testing")
    celery_app = app.extensions["celery"]
    assert "my_app.tasks.slow_task" in celery_app.tasks
    assert celery_app.conf.task_serializer == "json"


def test_the_web_process_leaves_the_pdf_library_to_the_workers():
    # fpdf2 is ~30,000 objects a web worker never uses; only report_task loads it.
    probe = (
        "import sys; from my_app import create_app; "
        "create_app('testing', REDIS_URL='redis://127.0.0.1:1/0'); "
        "print('fpdf' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()  # fmt: skip
    assert loaded == "False"
