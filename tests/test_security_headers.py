"""Security headers on every response (flask-talisman), and pages that live within them."""

from __future__ import annotations

import http.client

import pytest
from playwright.sync_api import expect
from support import serving

from my_app import create_app


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


@pytest.mark.parametrize(
    "path", ["/", "/api/tasks", "/api/tasks/nope", "/static/app.js", "/healthz", "/api/docs"]
)
def test_every_response_carries_the_headers(client, path):
    headers = client.get(path).headers
    policy = headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in headers  # development, plain HTTP


def test_a_file_download_has_one_date_line_on_the_wire(database_url):
    """werkzeug's ``make_conditional`` (static files, artifact downloads) adds a Date and
    the server sends its own: nginx warns of the pair. Fails without
    ``leave_the_date_to_the_server`` (two Date lines)."""
    app = create_app("testing", REDIS_URL=database_url)
    with serving(app) as base_url:
        connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=10)
        connection.request("GET", "/static/app.js")
        response = connection.getresponse()
        response.read()
        connection.close()
    assert response.status == 200
    assert len(response.msg.get_all("Date")) == 1


def test_errors_and_401s_carry_them_too(keyed_app):
    response = keyed_app.test_client().get("/api/tasks")
    assert response.status_code == 401
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_production_sends_hsts_over_https_only(monkeypatch, database_url):
    monkeypatch.setenv("SECRET_KEY", "a-long-random-production-secret")
    monkeypatch.setenv("API_KEYS", "ops:ops-secret")
    client = create_app("production", REDIS_URL=database_url).test_client()
    secure = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


def test_the_page_and_the_api_docs_run_under_the_policy(app, browser):
    with serving(app) as base_url:
        context = browser.new_context(base_url=base_url)
        page = context.new_page()
        violations = []
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto("/")
        expect(page.locator("[data-connection]")).to_contain_text("Live")
        page.goto("/api/docs")
        expect(page.get_by_text("/api/tasks/slow").first).to_be_visible(timeout=15_000)
        page.goto("/api/redoc")
        expect(page.get_by_text("Queue the seed job").first).to_be_attached(timeout=15_000)
        # ReDoc's bundle links its logo from its CDN; the policy rightly keeps it out.
        assert [text for text in violations if "https://cdn.redoc.ly/" not in text] == []
        context.close()


def test_the_page_cannot_be_framed(app, browser):
    with serving(app) as base_url:
        context = browser.new_context()
        page = context.new_page()
        page.set_content(f'<iframe src="{base_url}/"></iframe>')
        page.wait_for_timeout(1000)
        frame = page.frames[-1]
        assert frame.url != f"{base_url}/" or frame.content().count("Submit a job") == 0
        context.close()
