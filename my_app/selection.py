"""Which tasks a filter selects: the task list's filters (state, kind, schedule, dead
letters, a time range, an owner for an admin), read from the narrowest index that holds
them all, for the list and for the bulk actions alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app

from .owners import can_see, visible_owner
from .records import STORED_FINAL_STATES, TaskRecord, TaskState
from .status import read_tasks
from .store.ledger import MAX_INDEX, ledger_of

#: How many tasks are read from Redis at a time while a filter is applied.
READ_BATCH = 500


@dataclass(frozen=True)
class TaskFilter:
    """The filters of the task list and of the bulk actions; None matches anything."""

    state: str | None = None
    kind: str | None = None
    schedule: str | None = None
    dead_letter: bool | None = None
    submitted_after: str | None = None
    submitted_before: str | None = None
    owner: str | None = None

    @classmethod
    def of(cls, filters: dict[str, Any]) -> TaskFilter:
        """The filter of a request's checked arguments (times as ISO 8601 strings)."""
        times = {
            name: filters[name].isoformat() for name in ("submitted_after", "submitted_before")
            if filters.get(name) is not None
        }  # fmt: skip
        plain = {name: filters.get(name) for name in ("state", "kind", "schedule", "owner")}
        return cls(dead_letter=filters.get("dead_letter"), **plain, **times)

    @property
    def by_state_only(self) -> bool:
        """Whether only a final state is asked for (its index holds exactly that)."""
        return self == TaskFilter(state=self.state) and self.state in STORED_FINAL_STATES

    def matches(self, task: TaskRecord) -> bool:
        """Whether ``task`` passes every filter given."""
        return (
            (self.state is None or task.state == self.state)
            and (self.kind is None or task.kind == self.kind)
            and (self.schedule is None or task.schedule == self.schedule)
            and (self.dead_letter is None or task.dead_letter == self.dead_letter)
            and (self.owner is None or task.owner == self.owner)
            and (self.submitted_after is None or task.submitted_at >= self.submitted_after)
            and (self.submitted_before is None or task.submitted_at < self.submitted_before)
        )


def candidate_ids(task_filter: TaskFilter) -> list[str]:
    """The ids that may match, from the narrowest index: a final state's (dead letters
    are FAILUREs), the unfinished ones, or all of the owner's (everyone's for an admin,
    unless an owner is named)."""
    ledger = ledger_of()
    owner = task_filter.owner or visible_owner()
    state = TaskState.FAILURE.value if task_filter.dead_letter else task_filter.state
    if state in STORED_FINAL_STATES:
        return ledger.finished_page(owner, state, 0, MAX_INDEX)[0]
    if state is not None:  # unfinished (or LOST): active, or waiting (held jobs too)
        return sorted(ledger.unfinished_task_ids(owner, list(current_app.config["TASK_QUEUES"])))
    return ledger.task_ids(owner)


def selected_tasks(task_filter: TaskFilter, limit: int | None = None) -> Iterator[TaskRecord]:
    """The tasks the caller may see that pass the filter, at most ``limit``; read a
    batch at a time."""
    found = 0
    ids = candidate_ids(task_filter)
    for start in range(0, len(ids), READ_BATCH):
        for task in read_tasks(ids[start : start + READ_BATCH]):
            if can_see(task) and task_filter.matches(task):
                yield task
                found += 1
                if limit is not None and found >= limit:
                    return
