"""API keys, the browser's signed session, and the cross-site check on its changes."""

from __future__ import annotations

import logging

import pytest
import requests
from support import ADMIN, ALICE, serving

from my_app import create_app
from my_app.auth import parse_api_keys


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


def test_keys_parse_from_pairs_roles_and_lines():
    keys = parse_api_keys("alice:a1, root:r1:admin\n# a comment\n\nbob:b1")
    assert [(key.name, key.admin) for key in keys] == [
        ("alice", False), ("root", True), ("bob", False),
    ]  # fmt: skip
    assert "a1" not in repr(keys)  # a logged key never shows its secret


@pytest.mark.parametrize("text", ["alice", "alice:", ":secret", "alice:s:owner", "a:1,a:2"])
def test_a_bad_key_entry_is_refused_without_quoting_its_secret(text):
    with pytest.raises(ValueError) as refused:
        parse_api_keys(text)
    assert "secret" not in str(refused.value).replace("name:secret", "")
    assert ":s:" not in str(refused.value)


def test_keys_can_come_from_a_file(tmp_path, database_url):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# production keys\ncarol:carol-secret\n")
    app = create_app("testing", REDIS_URL=database_url, API_KEYS_FILE=str(keys_file))
    client = app.test_client()
    assert client.get("/api/tasks").status_code == 401
    assert (
        client.get("/api/tasks", headers={"Authorization": "Bearer carol-secret"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YWxpY2U6eA=="}],
    ids=["none", "wrong key", "another scheme"],
)
def test_without_a_valid_key_the_api_answers_401_json(keyed_app, headers):
    client = keyed_app.test_client()
    for method, path in [
        ("get", "/api/tasks"), ("post", "/api/tasks/slow"), ("get", "/run-task/Ada"),
        ("get", "/api/tasks/events"), ("get", "/status/00000000-0000-0000-0000-000000000000"),
    ]:  # fmt: skip
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
        assert response.get_json()["message"].startswith("Authentication required")


def test_health_docs_and_static_files_need_no_key(keyed_app):
    client = keyed_app.test_client()
    for path in ["/healthz", "/api/openapi.json", "/api/docs", "/api/redoc", "/static/app.js"]:
        assert client.get(path).status_code == 200, path


def test_a_key_is_never_logged(keyed_app, caplog):
    client = keyed_app.test_client()
    with caplog.at_level(logging.DEBUG):
        client.get("/api/tasks", headers={"Authorization": "Bearer not-a-key-9f3a"})
        client.get("/api/tasks", headers=ALICE)
    assert "not-a-key-9f3a" not in caplog.text and "alice-secret" not in caplog.text


def test_a_page_view_without_a_session_goes_to_sign_in(keyed_app):
    response = keyed_app.test_client().get("/tasks/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 302
    assert response.headers["Location"] == (
        "/sign-in?next=/tasks/00000000-0000-0000-0000-000000000000"
    )


def test_signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_it(keyed_app):
    with serving(keyed_app) as base_url:
        browser = requests.Session()
        same_site = {"Origin": base_url}
        wrong = browser.post(f"{base_url}/sign-in", data={"key": "nope"}, headers=same_site)
        assert wrong.status_code == 401 and "Unknown key" in wrong.text

        signed_in = browser.post(
            f"{base_url}/sign-in", data={"key": "alice-secret", "next": "//evil.example/"},
            headers=same_site, allow_redirects=False,
        )  # fmt: skip
        assert signed_in.status_code == 303
        assert signed_in.headers["Location"] == "/"  # never off this site
        cookie = signed_in.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "alice-secret" not in cookie
        assert "Signed in as" in browser.get(f"{base_url}/").text
        assert browser.get(f"{base_url}/api/tasks").status_code == 200

        assert browser.post(f"{base_url}/sign-out", headers=same_site).url.endswith("/sign-in")
        assert browser.get(f"{base_url}/api/tasks").status_code == 401


def test_a_cookie_request_from_another_site_is_refused(keyed_app):
    with serving(keyed_app) as base_url:
        browser = requests.Session()
        browser.post(
            f"{base_url}/sign-in", data={"key": "alice-secret"}, headers={"Origin": base_url}
        )
        job = {"name": "Ada", "seconds": 0}
        for headers in ({"Origin": "http://evil.example"}, {}, {"Sec-Fetch-Site": "cross-site"}):
            refused = browser.post(f"{base_url}/api/tasks/slow", json=job, headers=headers)
            assert refused.status_code == 403, headers
            assert refused.json()["message"].startswith("Cross-site request refused")
        accepted = browser.post(
            f"{base_url}/api/tasks/slow", json=job, headers={"Origin": base_url}
        )
        assert accepted.status_code == 202
        # A Bearer key is not a cookie: another site cannot make the browser send it.
        assert (
            requests.post(
                f"{base_url}/api/tasks/slow",
                json=job,
                headers={**ADMIN, "Origin": "http://x.example"},
            ).status_code
            == 202
        )


def test_a_sign_in_posted_from_another_site_is_refused(keyed_app):
    response = keyed_app.test_client().post(
        "/sign-in", data={"key": "alice-secret"}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers


def test_changing_a_key_signs_out_its_browsers(keyed_app, database_url):
    client = keyed_app.test_client()
    client.post("/sign-in", data={"key": "alice-secret"}, headers={"Origin": "http://localhost"})
    assert client.get("/api/tasks").status_code == 200
    keyed_app.extensions["api_keys"] = parse_api_keys("alice:a-new-secret")
    assert client.get("/api/tasks").status_code == 401


def test_a_copied_cookie_stops_working_at_sign_out(keyed_app):
    """Fails when sign-out only clears the browser's cookie: a copy of it, taken before,
    kept working until the secret key changed."""
    with serving(keyed_app) as base_url:
        browser = requests.Session()
        browser.post(
            f"{base_url}/sign-in", data={"key": "alice-secret"}, headers={"Origin": base_url}
        )
        thief = requests.Session()
        thief.cookies.update(browser.cookies)
        assert thief.get(f"{base_url}/api/tasks").status_code == 200
        browser.post(f"{base_url}/sign-out", headers={"Origin": base_url})
        assert thief.get(f"{base_url}/api/tasks").status_code == 401


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "/\tevil.example", "/\x01/evil.example", "/\\evil.example",
     "/\r\nLocation: http://evil.example", "https://evil.example/", "/\x7f/evil.example",
     "javascript:alert(1)", "\u2028/evil.example"],
)  # fmt: skip
def test_sign_in_goes_back_only_to_a_path_on_this_site(keyed_app, target):
    """Fails without the check of control characters and backslashes: a ``next`` of a
    slash, a tab and a host became ``Location: /\\tevil.example``, which browsers follow
    to evil.example; CR/LF answered 500."""
    response = keyed_app.test_client().post(
        "/sign-in", data={"key": "alice-secret", "next": target},
        headers={"Origin": "http://localhost"},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_a_same_site_next_path_is_kept(keyed_app):
    response = keyed_app.test_client().post(
        "/sign-in", data={"key": "alice-secret", "next": "/tasks/abc?x=1"},
        headers={"Origin": "http://localhost"},
    )  # fmt: skip
    assert response.headers["Location"] == "/tasks/abc?x=1"


def test_run_task_by_get_with_a_cookie_needs_this_site_or_the_address_bar(keyed_app):
    """Fails without the Sec-Fetch-Site check on the quick start's GET: an <img> on
    another site queued a job with the signed-in browser's cookie."""
    client = keyed_app.test_client()
    client.post("/sign-in", data={"key": "alice-secret"}, headers={"Origin": "http://localhost"})
    for headers in ({}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        refused = client.get("/run-task/img?seconds=0", headers=headers)
        assert refused.status_code == 403, headers
    for site in ("same-origin", "none"):
        accepted = client.get("/run-task/bar?seconds=0", headers={"Sec-Fetch-Site": site})
        assert accepted.status_code == 202, site
    # A Bearer key needs no such header: another site cannot make a browser send it.
    assert keyed_app.test_client().get("/run-task/key?seconds=0", headers=ALICE).status_code == 202
