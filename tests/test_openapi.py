"""The OpenAPI document: valid, served with local docs, and true to the live service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate
from support import ALICE, purge_queues, scaled, serving, wait_until

from my_app.status import read_tasks


def test_the_spec_is_valid_openapi(client):
    spec = client.get("/api/openapi.json").get_json()
    validate(spec)
    assert spec["info"]["title"] == "Background jobs"


def test_every_operation_is_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
            assert any(code.startswith("4") for code in operation["responses"]) or (
                "default" in operation["responses"]
            ), (method, path)


def test_every_error_answer_is_documented_with_the_error_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    responses = spec["components"].get("responses", {})
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for code, response in operation["responses"].items():
                if code[0] not in "45" and code != "default":
                    continue
                response = responses.get(response.get("$ref", "").rsplit("/", 1)[-1], response)
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


def test_thumbnail_sizes_are_declared_as_repeated_form_fields(client):
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/tasks/thumbnail"]["post"]["requestBody"]["content"]
    multipart = body["multipart/form-data"]
    assert multipart["schema"] == {"$ref": "#/components/schemas/ThumbnailJob"}
    assert multipart["encoding"]["sizes"] == {"style": "form", "explode": True}
    sizes = spec["components"]["schemas"]["ThumbnailJob"]["properties"]["sizes"]
    assert sizes["type"] == "array" and sizes["items"]["type"] == "integer"


def test_swagger_ui_and_redoc_are_served_without_a_cdn(client):
    for page, asset in (
        ("/api/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
        ("/api/redoc", "/static/vendor/redoc/redoc.standalone.js"),
    ):
        html = client.get(page).get_data(as_text=True)
        assert asset in html
        assert "cdn" not in html.lower() and "https://" not in html
        assert client.get(asset).status_code == 200


@pytest.mark.timeout(600)
def test_the_live_service_honours_its_schema(keyed_app, tmp_path):
    """A bounded schemathesis run with a valid key: no 5xx, every response as documented."""
    with serving(keyed_app) as live_server:
        run = run_schemathesis(live_server, tmp_path)
        # Stop whatever the generated requests queued, so the worker is free for other
        # tests: running ones stop at their next step, held ones are dropped, waiting ones
        # purged.
        ledger = keyed_app.extensions["ledger"]
        with keyed_app.test_request_context(headers=ALICE):
            for task_id in ledger.task_ids("alice"):
                requests.delete(f"{live_server}/api/tasks/{task_id}", headers=ALICE, timeout=5)
            purge_queues(keyed_app)
            wait_until(
                lambda: all(
                    task.state not in {"STARTED", "PROGRESS", "RETRY"}
                    for task in read_tasks(ledger.task_ids("alice"))
                ),
                timeout=120,
            )
    # Generated bodies can be megabytes long: keep every line of the report, each one short.
    report = "\n".join(line[:300] for line in (run.stdout + run.stderr).splitlines())
    assert run.returncode == 0, report[-20000:]
    # The stateful phase chains calls by the links schemathesis infers from Location.
    assert re.search(r"✅\s+Stateful", report), report[-5000:]


def run_schemathesis(live_server: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run schemathesis against the live service, as alice."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
            "run", f"{live_server}/api/openapi.json",
            "--header", f"Authorization: {ALICE['Authorization']}",
            "--phases", "examples,coverage,fuzzing,stateful",
            # The stateful phase runs last: at least 45 s, or it gets no time at all.
            "--max-examples", "10", "--max-time", str(scaled(60, minimum=45)),
            "--request-timeout", "5",
            "--seed", "1", "--generation-database", "none",
            "--wait-for-schema", "10", "--no-color",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=500,
    )  # fmt: skip


def test_the_documented_seconds_limits_are_the_enforced_ones_per_role(keyed_app):
    """Fails when the document's limits drift from the enforced ones: it said 3600 while
    a non-admin got 422 above 600, without saying so."""
    from support import ADMIN, ALICE

    spec = keyed_app.test_client().get("/api/openapi.json").get_json()
    seconds = spec["components"]["schemas"]["SlowJob"]["properties"]["seconds"]
    assert seconds["maximum"] == 3600
    assert "admin" in seconds["description"] and "MAX_JOB_SECONDS" in seconds["description"]
    client = keyed_app.test_client()
    limit = keyed_app.config["MAX_JOB_SECONDS"]
    over = {"name": "x", "seconds": limit + 1}
    assert client.post("/api/tasks/slow", json=over, headers=ALICE).status_code == 422
    admin = client.post("/api/tasks/slow", json={"name": "x", "seconds": 3600}, headers=ADMIN)
    assert admin.status_code == 202
    client.delete(admin.headers["Location"], headers=ADMIN)
    assert (
        client.post("/api/tasks/slow", json={**over, "seconds": 3601}, headers=ADMIN).status_code
        == 422
    )
