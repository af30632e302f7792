"""Liveness: the process answers. (No dependency is checked: a liveness probe that
failed with Redis would restart every web process at once during a Redis outage.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The web process is up."""
    return {"status": "ok"}
