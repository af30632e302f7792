"""Workflows: several jobs run as one Celery canvas, and read back as one thing.

A workflow is a list of stages; a stage is one step, or several that run side by side.
``start_workflow`` builds the canvas with Celery's own primitives (a ``chain`` of the
stages, a ``group`` for a stage of several, which Celery turns into a ``chord`` when a
step follows) from immutable signatures whose task ids are fixed first, so a step can
name an earlier step's files (``uses``) by its task id before anything runs. The whole
canvas is queued with ``root_id`` set to the workflow's id, and every step's message
carries it: the lifecycle files each task under its workflow as it is queued
(``my_app.lifecycle.workflow_of``), whoever queued it. So a chain queued from a shell is
a workflow too, with its first task's id as the workflow's.

``read_workflow`` joins the definition (kept for a workflow made here) with the task
records; a canvas from elsewhere is read from its tasks alone. Cancel revokes the steps
not done; retry queues again, as the same workflow, the first stage that failed and all
after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import chain, group, uuid
from celery.canvas import Signature
from flask import Flask, current_app

from . import lifecycle
from .records import RETRYABLE_STATES, TERMINAL_STATES, TaskRecord, TaskState
from .status import read_tasks
from .store.ledger import ledger_of, utc_now

#: The input each kind fills with the task ids of the steps it ``uses``.
USES_INPUT = {"report": "image_tasks", "email": "attachment_tasks"}


@dataclass(frozen=True)
class WorkflowStep:
    """One step: its name, kind and task, the steps it waits for, and its task's record
    (None until the task is queued: a step after a group is queued when the group ends)."""

    name: str
    kind: str
    task_id: str
    after: tuple[str, ...] = ()
    task: TaskRecord | None = None
    #: Not queued, and never will be: a step before it failed or was cancelled.
    never_runs: bool = False

    @property
    def state(self) -> TaskState:
        """The step's state; QUEUED while its task is not yet queued, REVOKED when it
        never will be."""
        if self.task is not None:
            return self.task.state
        return TaskState.REVOKED if self.never_runs else TaskState.QUEUED

    @property
    def percent(self) -> int:
        """How far the step got, 0 to 100."""
        if self.task is None:
            return 0
        if self.task.state == TaskState.SUCCESS:
            return 100
        return (self.task.progress or {}).get("percent", 0)


@dataclass(frozen=True)
class WorkflowRecord:
    """A workflow as every reader shows it: its steps, and its state and progress drawn
    from theirs."""

    id: str
    name: str
    owner: str
    submitted_at: str
    steps: tuple[WorkflowStep, ...]
    #: The stages, as lists of step names (for the page's graph).
    stages: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def state(self) -> TaskState:
        """FAILURE (or LOST) if a step failed, REVOKED if one was cancelled, SUCCESS when
        all succeeded; PROGRESS while any runs, STARTED once any began; else QUEUED."""
        states = [step.state for step in self.steps]
        for final in (TaskState.FAILURE, TaskState.LOST, TaskState.REVOKED):
            if final in states:
                return TaskState.FAILURE if final == TaskState.LOST else final
        if all(state == TaskState.SUCCESS for state in states):
            return TaskState.SUCCESS
        if any(state != TaskState.QUEUED for state in states):
            return TaskState.PROGRESS
        return TaskState.QUEUED

    @property
    def finished(self) -> bool:
        """Whether no step will run any more."""
        return self.state in TERMINAL_STATES

    @property
    def progress(self) -> dict[str, int]:
        """Steps done of all, and the percentage of the whole (each step's share equal)."""
        done = sum(1 for step in self.steps if step.state == TaskState.SUCCESS)
        percent = round(sum(step.percent for step in self.steps) / max(1, len(self.steps)))
        return {"current": done, "total": len(self.steps), "percent": percent}

    @property
    def finished_at(self) -> str | None:
        """When its last step ended, once it is finished."""
        if not self.finished:
            return None
        times = [
            step.task.finished_at for step in self.steps if step.task and step.task.finished_at
        ]
        return max(times) if times else None


class WorkflowError(ValueError):
    """A workflow that cannot be built as given (422)."""


def start_workflow(name: str, stages: Sequence[Sequence[dict[str, Any]]], owner: str) -> str:
    """Queue ``stages`` (each a list of validated steps: ``name``, ``kind``, ``task``,
    ``inputs``, ``uses``) as one canvas for ``owner``; returns the workflow's id."""
    workflow_id = uuid()
    definition = {
        "id": workflow_id,
        "name": name,
        "owner": owner,
        "submitted_at": utc_now(),
        "stages": [[{**step, "task_id": uuid()} for step in stage] for stage in stages],
    }
    queue_stages(definition, definition["stages"], owner)
    return workflow_id


def queue_stages(
    definition: dict[str, Any], stages: list[list[dict[str, Any]]], owner: str
) -> None:
    """Keep the definition, then queue ``stages`` (the last of its stages) as a chain, the
    workflow's id as every message's ``root_id``."""
    task_ids = {step["name"]: step["task_id"] for stage in definition["stages"] for step in stage}
    ledger_of().record_workflow(definition)
    canvas = chain(*(stage_signature(stage, task_ids, owner) for stage in stages))
    let_go(canvas.apply_async(root_id=definition["id"]))


def let_go(result: Any) -> None:
    """Drop the result subscriptions that queueing a canvas made in this process.

    Freezing a group gives it a result that waits for its members (Celery's barrier),
    and that subscribes this process to each member's result channel until the objects
    are garbage collected. Nothing here reads them (readers go through the ledger), so
    each is let go at once, through the backend's own ``remove_pending_result``.
    """
    while result is not None:
        for member in getattr(result, "results", None) or [result]:
            member.backend.remove_pending_result(member)
        result = result.parent


def stage_signature(stage: list[dict[str, Any]], task_ids: dict[str, str], owner: str) -> Signature:
    """One stage: a step's immutable signature (it takes no result from the one before:
    it names the files it uses), or a group of them. Each message carries its owner, and
    a re-run step the task it runs again."""
    signatures = []
    for step in stage:
        inputs = dict(step["inputs"])
        if step.get("uses"):
            inputs[USES_INPUT[step["kind"]]] = [task_ids[used] for used in step["uses"]]
        headers = {lifecycle.OWNER_HEADER: owner}
        if step.get("retry_of"):
            headers[lifecycle.RETRY_OF_HEADER] = step["retry_of"]
        signature = current_app.extensions["celery"].signature(
            step["task"], kwargs=inputs, immutable=True
        )
        signatures.append(signature.set(task_id=step["task_id"], headers=headers))
    return signatures[0] if len(signatures) == 1 else group(signatures)


def read_workflow(workflow_id: str) -> WorkflowRecord | None:
    """The workflow with this id, or None when there is none (or it expired)."""
    ledger = ledger_of()
    definition = ledger.workflow_definition(workflow_id)
    task_ids = ledger.workflow_task_ids(workflow_id)
    if definition is None and not task_ids:
        return None
    # The definition's steps too: one after a group is queued (and indexed) only later.
    defined = [step["task_id"] for stage in (definition or {}).get("stages", []) for step in stage]
    records = {task.id: task for task in read_tasks(list(dict.fromkeys(task_ids + defined)))}
    if definition is None:
        return inferred_workflow(workflow_id, [records[i] for i in task_ids if i in records])
    steps, stages, previous, stopped = [], [], (), False
    for stage in definition["stages"]:
        names = tuple(step["name"] for step in stage)
        for step in stage:
            task_id = step["task_id"]
            steps.append(
                WorkflowStep(
                    step["name"], step["kind"], task_id, previous, records.get(task_id), stopped
                )
            )
        stopped = stopped or any(
            step.state in RETRYABLE_STATES for step in steps[len(steps) - len(stage) :]
        )
        stages.append(names)
        previous = names
    return WorkflowRecord(
        id=workflow_id,
        name=str(definition.get("name") or ""),
        owner=str(definition.get("owner") or ""),
        submitted_at=str(definition.get("submitted_at") or ""),
        steps=tuple(steps),
        stages=tuple(stages),
    )


def inferred_workflow(workflow_id: str, tasks: list[TaskRecord]) -> WorkflowRecord | None:
    """A canvas queued elsewhere (a shell, beat, Flower), read from its tasks: in the
    order they were queued, each a stage of its own, a task retried replaced by its
    re-run."""
    replaced = {task.retry_of for task in tasks if task.retry_of}
    current = [task for task in tasks if task.id not in replaced]
    if not current:
        return None
    steps, previous = [], ()
    for number, task in enumerate(current, start=1):
        name = f"{number}. {task.kind}"
        steps.append(WorkflowStep(name, task.kind, task.id, previous, task))
        previous = (name,)
    return WorkflowRecord(
        id=workflow_id,
        name="",
        owner=current[0].owner,
        submitted_at=current[0].submitted_at,
        steps=tuple(steps),
        stages=tuple((step.name,) for step in steps),
    )


def cancel_workflow(flask_app: Flask, workflow: WorkflowRecord) -> int:
    """Cancel every step not finished (queued, running, or not yet queued); returns how
    many were asked to stop."""
    cancelled = 0
    for step in workflow.steps:
        if step.task is None or not step.task.finished:
            lifecycle.cancel(flask_app, step.task_id, workflow.owner)
            cancelled += 1
    return cancelled


def retry_workflow(workflow: WorkflowRecord) -> None:
    """Queue again, as the same workflow, the first stage with a step that failed, was
    cancelled or lost, and every stage after it; each re-run step says which task it
    runs again. Raises ``WorkflowError`` when no step needs it."""
    ledger = ledger_of()
    definition = ledger.workflow_definition(workflow.id) or inferred_definition(workflow)
    by_name = {step.name: step for step in workflow.steps}
    stages = definition["stages"]
    first = next(
        (
            index
            for index, stage in enumerate(stages)
            if any(by_name[step["name"]].state in RETRYABLE_STATES for step in stage)
        ),
        None,
    )
    if first is None:
        raise WorkflowError("No step of the workflow failed, was cancelled or was lost.")
    for stage in stages[first:]:
        for step in stage:
            step["retry_of"] = step["task_id"]
            step["task_id"] = uuid()
    queue_stages(definition, stages[first:], workflow.owner)


def inferred_definition(workflow: WorkflowRecord) -> dict[str, Any]:
    """A definition for a canvas queued elsewhere: its tasks in order, one a stage,
    with the inputs they were queued with."""
    stages = []
    for step in workflow.steps:
        task = step.task
        if task is None or task.call_args or not task.task_name:
            raise WorkflowError(
                f"Step {step.name} cannot be queued again: its inputs are not all known."
            )
        stages.append(
            [{"name": step.name, "kind": step.kind, "task": task.task_name,
              "inputs": task.call_kwargs, "uses": [], "task_id": task.id}]
        )  # fmt: skip
    return {
        "id": workflow.id,
        "name": workflow.name,
        "owner": workflow.owner,
        "submitted_at": workflow.submitted_at,
        "stages": stages,
    }
