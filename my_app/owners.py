"""Who may see a task: every task in the ledger belongs to one owner, and a caller sees
its own tasks (an admin sees everyone's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auth import current_caller
from .records import TaskRecord
from .store.keys import ALL_SUBMITTED_CHANNEL, owner_channel
from .store.ledger import ledger_of

if TYPE_CHECKING:
    from .workflows import WorkflowRecord


def current_owner() -> str:
    """The owner the current request acts for: its API key's name, or, with ``API_KEYS``
    unset, the one anonymous owner that tasks queued outside the HTTP API belong to
    (``DEFAULT_OWNER``), so the API shows them."""
    return current_caller().owner


def can_see(task: TaskRecord | WorkflowRecord) -> bool:
    """Whether the current caller may see (and act on) ``task`` (or a workflow)."""
    caller = current_caller()
    return caller.admin or task.owner == caller.owner


def visible_owner() -> str | None:
    """Whose tasks the current caller sees: its owner's, or everyone's (None) for an
    admin, as the ledger's index reads take it."""
    caller = current_caller()
    return None if caller.admin else caller.owner


def visible_task_ids(limit: int | None = None) -> list[str]:
    """The ids of the tasks the current caller sees, newest first."""
    return ledger_of().task_ids(visible_owner(), limit=limit)


def visible_task_page(first: int, last: int) -> tuple[list[str], int]:
    """A page (``first`` to ``last``, newest first) of the tasks the caller sees, and
    their count."""
    return ledger_of().task_id_page(visible_owner(), first, last)


def visible_finished_ids(state: str, first: int, last: int) -> tuple[list[str], int]:
    """A page of the tasks the caller sees that ended in ``state``, and their count."""
    return ledger_of().finished_page(visible_owner(), state, first, last)


def submissions_channel() -> str:
    """The channel announcing the new tasks the current caller sees."""
    caller = current_caller()
    return ALL_SUBMITTED_CHANNEL if caller.admin else owner_channel(caller.owner)
