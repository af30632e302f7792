"""The submission rate limit: one budget a minute per owner (its API key; without keys,
per client address), for every route that queues a job (Flask-Limiter, counted in Redis
before the request is read). Admins are exempt."""

from __future__ import annotations

from flask import current_app, request

from ..auth import current_caller
from ..extensions import limiter

#: The one read that queues work: the quick start's GET, from a browser's address bar.
SUBMITTING_READS = frozenset({"run_task.run_task"})


def submit_rate_limit() -> str:
    """``SUBMIT_RATE_LIMIT`` as Flask-Limiter's limit string."""
    return f"{current_app.config['SUBMIT_RATE_LIMIT']}/minute"


def rate_limit_off() -> bool:
    """``SUBMIT_RATE_LIMIT = 0`` turns the limit off; an admin is never limited."""
    return not current_app.config["SUBMIT_RATE_LIMIT"] or current_caller().admin


#: Decorates each submitting view; all of them share the "submissions" budget.
submission_limit = limiter.shared_limit(
    submit_rate_limit,
    scope="submissions",
    exempt_when=rate_limit_off,
    error_message=lambda: (
        f"Too many submissions: at most {current_app.config['SUBMIT_RATE_LIMIT']} a minute "
        "for one owner. Retry-After says when to try again."
    ),
)


@limiter.request_filter
def reads_are_exempt() -> bool:
    """Reads never count against the budget: Flask-Limiter skips them before resolving
    any limit (it otherwise evaluates every request, limited or not)."""
    return request.method in ("GET", "HEAD", "OPTIONS") and request.endpoint not in (
        SUBMITTING_READS
    )
