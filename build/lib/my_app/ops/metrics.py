"""``GET /metrics`` in Prometheus's text format (prometheus_client).

Two sources, each kept where it is correct with many processes on many machines:

- **HTTP requests** (counts by route, method and status; latency histograms) are each
  web process's own, in prometheus_client's multiprocess mode when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (``make serve`` sets it): every gunicorn worker
  writes its samples to that folder and whichever one answers ``/metrics`` adds them up.
  They stay per machine, as Prometheus expects of each scraped target.
- **Jobs** (queued, succeeded, failed, revoked and retried by kind; run-time histograms by
  kind; each queue's depth and the age of its oldest waiting job; workers online) are
  read from Redis at scrape time (``store.job_metrics``): they are counted by every web
  process and every worker wherever they run, so only the shared store counts them once.
  Every web machine reports the same job figures; aggregate them with ``max``.

Protected by ``METRICS_TOKEN`` (``Authorization: Bearer <token>``) or an admin API key.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from werkzeug.exceptions import Forbidden

from ..auth import AuthenticationError, current_caller, keys_required
from ..store import job_metrics
from ..store.broker_queues import queue_overview
from ..store.ledger import ledger_of

bp = Blueprint("metrics", __name__)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"]
)


def init_app(app: Flask) -> None:
    """Time every request (event streams count when their answer starts)."""
    app.before_request(start_timer)
    app.after_request(observe)


def start_timer() -> None:
    """Note when the request started."""
    g.metrics_started = time.perf_counter()


def observe(response: Response) -> Response:
    """Count the request under its route's pattern (bounded: not the raw path)."""
    route = request.url_rule.rule if request.url_rule else "unmatched"
    started = g.get("metrics_started")
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    if started is not None:
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
    return response


class JobCollector:
    """Job figures read from Redis and the broker at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        """Yield each job metric family."""
        client = self.app.extensions["redis"]
        queues = list(self.app.config["TASK_QUEUES"])
        counters = job_metrics.read_counters(client)
        kinds = sorted({kind for _, kind in counters} | set(self.app.config["TASK_TIME_LIMITS"]))
        jobs = CounterMetricFamily("jobs", "Jobs by event and kind", labels=["event", "kind"])
        for event in job_metrics.EVENTS:
            for kind in kinds:
                jobs.add_metric([event, kind], counters.get((event, kind), 0))
        yield jobs
        runtime = HistogramMetricFamily(
            "job_run_seconds", "How long finished jobs ran", labels=["kind"]
        )
        for kind, (buckets, total, _count) in job_metrics.read_runtimes(client, kinds).items():
            runtime.add_metric([kind], [(str(bound), count) for bound, count in buckets], total)
        yield runtime
        heartbeats = ledger_of(self.app).heartbeats.live()
        overview = queue_overview(self.app.extensions["celery"], client, queues, heartbeats)
        depth = GaugeMetricFamily("queue_depth", "Messages waiting in a queue", labels=["queue"])
        oldest = GaugeMetricFamily(
            "queue_oldest_job_age_seconds",
            "How long the oldest job not yet taken has waited in a queue",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            "queue_consumers", "Live workers consuming a queue", labels=["queue"]
        )
        for queue in overview:
            depth.add_metric([queue["name"]], queue["depth"])
            oldest.add_metric([queue["name"]], queue["oldest_waiting_seconds"])
            consumers.add_metric([queue["name"]], len(queue["consumers"]))
        online = GaugeMetricFamily("workers_online", "Workers with a current heartbeat")
        online.add_metric([], len(heartbeats))
        yield from (depth, oldest, online, consumers)


def require_metrics_access() -> None:
    """``METRICS_TOKEN`` as a Bearer token, or an admin key; open only when neither keys
    nor a token are configured (development)."""
    token = current_app.config.get("METRICS_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return
    if not token and not keys_required():
        return
    if not keys_required():
        raise AuthenticationError("Send Authorization: Bearer <METRICS_TOKEN>.")
    if not current_caller().admin:
        raise Forbidden("Metrics need an admin key or METRICS_TOKEN.")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus's text format: HTTP requests of this machine, jobs of the system."""
    require_metrics_access()
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
        registry.register(HTTP_LATENCY)
    registry.register(JobCollector(current_app._get_current_object()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
