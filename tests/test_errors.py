"""Every API error is JSON in one shape: code, status, message and, for validation, errors."""

from __future__ import annotations

import pytest

from devservers.embedded_redis import free_port
from my_app import create_app


def assert_json_error(response, code):
    assert response.status_code == code
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == code
    assert body["status"]
    assert body["message"]
    return body


def test_malformed_json_is_400(client):
    response = client.post(
        "/api/tasks/slow", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, 400)


def test_json_nested_too_deeply_is_400(client):
    response = client.post(
        "/api/tasks/slow", data="[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    body = assert_json_error(response, 400)
    assert "nested too deeply" in body["message"]


def test_unknown_route_is_404(client):
    assert_json_error(client.get("/api/nothing-here"), 404)


def test_wrong_method_is_405(client):
    assert_json_error(client.put("/api/tasks/slow", json={}), 405)


def test_a_body_that_is_too_large_is_413(client):
    response = client.post("/api/tasks/slow", json={"name": "x" * (17 * 1024 * 1024)})
    assert_json_error(response, 413)


def test_a_body_that_is_not_json_is_415(client):
    response = client.post("/api/tasks/slow", data="name=Ada", content_type="text/plain")
    body = assert_json_error(response, 415)
    assert "application/json" in body["message"]


def test_validation_errors_are_422_per_field(client):
    response = client.post("/api/tasks/slow", json={"name": "", "seconds": 9999, "extra": 1})
    body = assert_json_error(response, 422)
    fields = body["errors"]["json"]
    assert set(fields) == {"name", "seconds", "extra"}
    assert fields["seconds"] == [
        "Must be greater than or equal to 0 and less than or equal to 3600."
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/tasks/slow"),
        ("get", "/api/tasks/00000000-0000-4000-8000-000000000000"),
        ("get", "/api/tasks"),
        ("post", "/run-task/Ada"),
        ("get", "/status/00000000-0000-4000-8000-000000000000"),
        ("get", "/api/tasks/events"),
    ],
)
def test_redis_down_is_503_json_not_a_hang(method, path):
    app = create_app("testing", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    kwargs = {"json": {"name": "Ada"}} if path == "/api/tasks/slow" else {}
    response = getattr(client, method)(path, **kwargs)
    body = assert_json_error(response, 503)
    assert "nothing was queued" in body["message"]
    assert response.headers["Retry-After"] == "5"
