"""Whose tasks these are: every task in the ledger belongs to one owner, and a caller
sees its own tasks (an admin sees everyone's)."""

from __future__ import annotations

from typing import Any

import redis

from .auth import current_caller
from .store import ledger
from .store.keys import ALL_SUBMITTED_CHANNEL, owner_channel


def current_owner() -> str:
    """The owner the current request acts for: its API key's name, or, with ``API_KEYS``
    unset, the one anonymous owner that tasks queued outside the HTTP API belong to
    (``DEFAULT_OWNER``), so the API shows them."""
    return current_caller().owner


def can_see(task: dict[str, Any]) -> bool:
    """Whether the current caller may see (and act on) ``task``."""
    caller = current_caller()
    return caller.admin or task["owner"] == caller.owner


def visible_owner() -> str | None:
    """Whose tasks the current caller sees: its owner's, or everyone's (None) for an
    admin, as the ledger's index functions take it."""
    caller = current_caller()
    return None if caller.admin else caller.owner


def visible_task_ids(client: redis.Redis, limit: int | None = None) -> list[str]:
    """The ids of the tasks the current caller sees, newest first."""
    caller = current_caller()
    if caller.admin:
        return ledger.all_task_ids(client, limit=limit)
    return ledger.owner_task_ids(client, caller.owner, limit=limit)


def visible_task_page(client: redis.Redis, first: int, last: int) -> tuple[list[str], int]:
    """A page (``first`` to ``last``, newest first) of the tasks the caller sees, and
    their count."""
    return ledger.task_id_page(client, visible_owner(), first, last)


def submissions_channel() -> str:
    """The channel announcing the new tasks the current caller sees."""
    caller = current_caller()
    return ALL_SUBMITTED_CHANNEL if caller.admin else owner_channel(caller.owner)


def visible_finished_ids(
    client: redis.Redis, state: str, first: int, last: int
) -> tuple[list[str], int]:
    """A page of the tasks the caller sees that ended in ``state``, and their count."""
    return ledger.finished_task_ids(client, visible_owner(), state, first, last)


def visible_unfinished_ids(client: redis.Redis, queues: list[str]) -> list[str]:
    """The ids of tasks the caller sees, or may see, that may not have finished (active,
    or waiting in ``queues``): check each with ``can_see``."""
    return sorted(ledger.unfinished_task_ids(client, visible_owner(), queues))
