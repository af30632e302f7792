"""Whose tasks these are: every task in the ledger belongs to one owner."""

from __future__ import annotations

from flask import current_app


def current_owner() -> str:
    """The owner the current request acts for.

    Without authentication every caller is one anonymous owner, the one that tasks
    queued outside the HTTP API belong to (``DEFAULT_OWNER``), so the API shows them.
    """
    return current_app.config["DEFAULT_OWNER"]
