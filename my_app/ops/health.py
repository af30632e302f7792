"""Health for orchestrators and operators.

``/healthz`` is liveness: the process answers, and no dependency is checked (a liveness
probe that failed with Redis would restart every web process at once during a Redis
outage). ``/readyz`` is readiness: Redis and the broker answer, Redis has room for new
jobs, and a live worker consumes each queue; each check says how long it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app

from ..store.capacity import StorageFull
from ..store.ledger import ledger_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The web process is up."""
    return {"status": "ok"}


def timed(check: Callable[[], str | None]) -> dict[str, Any]:
    """Run ``check``; it returns None when all is well, else what is wrong."""
    started = time.perf_counter()
    try:
        problem = check()
    except Exception as error:  # an unreachable dependency is the answer, not a 500
        problem = f"{type(error).__name__}: {error}"
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return {
        "ok": problem is None,
        "latency_ms": latency_ms,
        **({"error": problem} if problem else {}),
    }


def redis_check() -> str | None:
    """The ledger's Redis answers PING."""
    ledger_of().client.ping()
    return None


def storage_check() -> str | None:
    """Redis has room for new jobs, and evicts nothing (my_app.store.capacity)."""
    reading = ledger_of().memory.read()
    if reading.limit and reading.policy != "noeviction":
        return (
            f"storage: maxmemory-policy is {reading.policy}, which may evict queued jobs "
            "and their records; set it to noeviction"
        )
    try:
        ledger_of().memory.check_room(current_app.config["STORAGE_HEADROOM_PERCENT"])
    except StorageFull as full:
        return f"storage is full: {full}"
    return None


def broker_check() -> str | None:
    """The broker accepts a connection (one attempt, no retries)."""
    celery_app = current_app.extensions["celery"]
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return None


def consumers_check(workers: dict[str, list[str]]) -> Callable[[], str | None]:
    """Every queue in ``TASK_QUEUES`` has a live worker consuming it."""

    def check() -> str | None:
        live = ledger_of().heartbeats.live()
        workers.update({name: beat["queues"] for name, beat in live.items()})
        consumed = {queue for queues in workers.values() for queue in queues}
        missing = [q for q in current_app.config["TASK_QUEUES"] if q not in consumed]
        if missing:
            return "; ".join(f"no worker consumes queue {queue}" for queue in missing)
        return None

    return check


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready when Redis and the broker answer and every queue has a consumer; 503 with
    what is missing otherwise."""
    workers: dict[str, list[str]] = {}
    checks = {
        "redis": timed(redis_check),
        "storage": timed(storage_check),
        "broker": timed(broker_check),
        "consumers": timed(consumers_check(workers)),
    }
    checks["consumers"]["workers"] = workers
    problems = [check["error"] for check in checks.values() if not check["ok"]]
    body = {"status": "ready" if not problems else "not ready", "checks": checks}
    if problems:
        body["message"] = "; ".join(problems)
    return body, 200 if not problems else 503
