"""Settings: declared once (my_app.settings), checked at start-up with one error listing
every bad one, documented by a README table generated from the declaration; and a clean
``pip install .`` (no extras) that runs the web app and a worker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support import ROOT, TERMINAL_STATES, free_port, wait_for_task, wait_until

from my_app import create_app
from my_app.settings import SETTINGS, SettingsError, markdown_table

TABLE = re.compile(
    r"<!-- settings table: .*? -->\n(?P<table>.*?)\n<!-- end of settings table -->", re.S
)


def test_the_readme_settings_table_is_the_declaration():
    """Fails when a setting is added, renamed, or its default or meaning changed in
    my_app/settings.py without the README (regenerate: python -m my_app.settings)."""
    readme = (ROOT / "README.md").read_text()
    match = TABLE.search(readme)
    assert match, "README.md lost its settings table markers"
    assert match["table"].strip() == markdown_table().strip()


def test_every_config_default_comes_from_the_declaration():
    """Fails when a setting's default is written again in my_app/config.py (settings the
    test session sets in the environment, such as ARTIFACT_STORE, aside)."""
    app = create_app("development")
    for setting in SETTINGS:
        if setting.name != "CELERY" and setting.env_name not in os.environ:
            assert app.config[setting.name] == setting.default, setting.name


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"FLASK_MAX_ACTIVE_JOBS": "x"}, "FLASK_MAX_ACTIVE_JOBS must be a whole number"),
        ({"FLASK_EVENTS_CLIENT_CHECK_SECONDS": "0"}, "FLASK_EVENTS_CLIENT_CHECK_SECONDS must be"),
        ({"LOG_FORMAT": "JSON"}, "LOG_FORMAT must be one of text, json"),
        ({"FLASK_TASK_TIME_LIMITS__report__soft": "400"}, "report: soft (400) must be below"),
        ({"FLASK_TASK_TIME_LIMITS__knitting__soft": "4"}, "'knitting' is not a kind of job"),
        ({"ARTIFACT_STORE": "nosuch://bucket/x"}, "ARTIFACT_STORE cannot open 'nosuch://bucket/x'"),
        ({"FLASK_STORAGE_HEADROOM_PERCENT": "120"}, "must be at most 100"),
        ({"FLASK_SESSION_COOKIE_SAMESITE": "sideways"}, "must be one of Strict, Lax"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_it(monkeypatch, environment, expected):
    """Fails without the check at start-up: these passed, and failed later (a 500 at the
    first submission, a spinning stream, text logs for JSON)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        create_app("testing")
    assert expected in str(error.value)


def test_every_bad_setting_is_listed_in_one_error(monkeypatch):
    monkeypatch.setenv("FLASK_MAX_ACTIVE_JOBS", "x")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("FLASK_REDIS_SOCKET_TIMEOUT", "-1")
    with pytest.raises(SettingsError) as error:
        create_app("production", SECRET_KEY="s" * 32, API_KEYS="a:b")
    assert len(re.findall(r"^  - ", str(error.value), re.M)) == 3


def test_values_from_the_environment_take_their_declared_type(monkeypatch):
    monkeypatch.setenv("FLASK_RESTORE_SWEEP", "off")
    monkeypatch.setenv("FLASK_REDIS_OUTAGE_GRACE_SECONDS", "5")
    app = create_app("testing")
    assert app.config["RESTORE_SWEEP"] is False
    assert app.config["REDIS_OUTAGE_GRACE_SECONDS"] == 5.0


def test_default_owner_is_a_plain_variable(monkeypatch):
    """Fails when DEFAULT_OWNER is not read from the plain variable the README names."""
    monkeypatch.setenv("DEFAULT_OWNER", "reports-team")
    assert create_app("testing").config["DEFAULT_OWNER"] == "reports-team"


def test_production_refuses_to_start_without_api_keys_unless_told(monkeypatch):
    """Fails when production starts an open, anonymous API without ALLOW_ANONYMOUS."""
    monkeypatch.delenv("API_KEYS", raising=False)
    with pytest.raises(SettingsError, match="API_KEYS"):
        create_app("production", SECRET_KEY="s" * 32)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app("production", API_KEYS="a:b")
    monkeypatch.setenv("ALLOW_ANONYMOUS", "1")
    assert create_app("production", SECRET_KEY="s" * 32).config["ALLOW_ANONYMOUS"] is True


def test_session_cookie_samesite_is_honoured(redis_url):
    """Fails when flask-talisman's own SameSite overrides the setting (it was "Strict"
    whatever SESSION_COOKIE_SAMESITE said)."""
    app = create_app(
        "testing", REDIS_URL=f"{redis_url}/0", API_KEYS="alice:alice-secret",
        SECRET_KEY="test-secret", SESSION_COOKIE_SAMESITE="Lax",
    )  # fmt: skip
    client = app.test_client()
    response = client.post(
        "/sign-in", data={"key": "alice-secret"}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert "SameSite=Lax" in response.headers["Set-Cookie"]


@pytest.mark.timeout(600)
def test_a_clean_install_without_extras_runs_the_web_app_and_a_worker(tmp_path, redis_url):
    """``pip install .`` into a new venv (no extras, as a container image would), then,
    from a folder outside the project, gunicorn serves the app and ``celery -A
    celery_worker worker`` runs a job.

    Fails when my_app imports a package setup.cfg does not declare (prometheus_client
    was), or celery_worker is not installed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # The venv's bundled pip (23.2) backtracks into kombu releases that no longer build.
    subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=120)
    # From a copy of the project: setuptools writes build/ next to what it builds.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(".venv", "var", ".git", "build", "*.egg-info",
                                      "__pycache__", ".pytest_cache", ".ruff_cache"),
    )  # fmt: skip
    subprocess.run([*pip, str(source)], check=True, timeout=420)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(ROOT / "gunicorn.conf.py", elsewhere)
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "PYTHON"))
    }
    env.update(
        REDIS_URL=f"{redis_url}/0", APP_CONFIG="testing", PORT=str(port),
        WEB_CONCURRENCY="1", PATH=f"{venv / 'bin'}:{env['PATH']}",
    )  # fmt: skip
    bin_dir = venv / "bin"
    web = subprocess.Popen([str(bin_dir / "gunicorn")], cwd=elsewhere, env=env)
    worker = subprocess.Popen(
        [str(bin_dir / "celery"), "-A", "celery_worker", "worker", "--loglevel=WARNING",
         "--concurrency=1", "--without-mingle", "--without-gossip"],
        cwd=elsewhere, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"), timeout=60, interval=0.5)
        task = requests.post(f"{base}/api/tasks/slow", json={"name": "clean", "seconds": 1})
        assert task.status_code == 202, task.text
        done = wait_for_task(base, task.json()["id"], TERMINAL_STATES, timeout=60)
        assert done["state"] == "SUCCESS"
        installed = subprocess.run(
            [str(bin_dir / "python"), "-c", "import my_app; print(my_app.__file__)"],
            cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert str(venv) in installed.stdout  # not the project folder's copy
    finally:
        for process in (web, worker):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_settings_module_prints_the_table():
    output = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "my_app.settings"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert output.stdout.strip() == markdown_table().strip()
    assert Path(ROOT / "README.md").read_text().count(output.stdout.strip()) == 1
