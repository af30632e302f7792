"""A worker entry point for the tracing test: ``celery_worker``'s app, with its spans
written as JSON lines to ``SPANS_FILE`` (an SDK SpanExporter), so the test process can
read the worker's side of a trace."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Appends each finished span to a file, one JSON object per line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as output:
            for span in spans:
                output.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ["SPANS_FILE"])))
trace.set_tracer_provider(provider)

from celery_worker import celery_app  # noqa: E402  after the provider: the app instruments itself

__all__ = ["celery_app"]
