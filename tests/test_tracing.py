"""OpenTelemetry: the Flask and Celery instrumentations link the request that queues a job
to the worker span that runs it. The web side's spans go to the SDK's in-memory
exporter; the worker, a real process, writes its spans to a file (traced_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support import ROOT, forget_ledger, wait_for_state, wait_until

from my_app import create_app


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


EXPORTER = InMemorySpanExporter()


@pytest.fixture
def traced(database_url, tmp_path):
    """A traced app on a database of its own and a traced worker process; yields the app and the
    file of the worker's spans."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    url = database_url
    app = create_app("testing", REDIS_URL=url, OTEL_ENABLED=True)
    spans_file = tmp_path / "worker-spans.jsonl"
    env = {**os.environ, "REDIS_URL": url, "APP_CONFIG": "testing", "OTEL_ENABLED": "1",
           "FLASK_OTEL_ENABLED": "true", "SPANS_FILE": str(spans_file),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT)])}  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "traced_worker", "worker", "--pool=threads",
         "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        yield app, spans_file
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        CeleryInstrumentor().uninstrument()
        forget_ledger(app)


def test_the_request_span_is_the_ancestor_of_the_worker_span(traced):
    app, spans_file = traced
    EXPORTER.clear()
    client = app.test_client()
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0}).get_json()
    wait_for_state(client, task["links"]["self"], {"SUCCESS"}, timeout=60)

    web = EXPORTER.get_finished_spans()
    [request] = [s for s in web if s.kind == SpanKind.SERVER and s.name == "POST /api/tasks/slow"]
    [publish] = [s for s in web if s.kind == SpanKind.PRODUCER]
    assert publish.parent.span_id == request.context.span_id

    def worker_run_span() -> dict | None:
        if not spans_file.exists():
            return None
        spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
        return next((s for s in spans if s["kind"] == "SpanKind.CONSUMER"), None)

    run = wait_until(worker_run_span, timeout=20)
    assert run["context"]["trace_id"] == f"0x{request.context.trace_id:032x}"
    assert run["parent_id"] == f"0x{publish.context.span_id:016x}"
    assert run["attributes"]["celery.task_name"] == "my_app.tasks.slow_task"
