"""Every Redis key and channel the service itself names, in one place.

Celery's own keys (queues, results, their channels) are Celery's: the broker and the
result backend name them, and the service asks the backend for them.
"""

from __future__ import annotations

PREFIX = "jobs:"


def task_key(task_id: str) -> str:
    """The hash holding one task's ledger entry."""
    return f"{PREFIX}task:{task_id}"


def owner_key(owner: str) -> str:
    """The sorted set of an owner's task ids, scored by submission time."""
    return f"{PREFIX}owner:{owner}"


#: The sorted set of every owner's task ids, scored by submission time (an admin's list).
ALL_TASKS = f"{PREFIX}tasks"

#: The channel announcing every new task, whoever owns it (an admin's feed).
ALL_SUBMITTED_CHANNEL = f"{PREFIX}submitted"


#: The sorted set of every owner's tasks that may still be queued or running, scored by
#: submission time (an admin's filter of unfinished tasks); a task leaves it when it
#: ends, is cancelled, or is older than the retention.
ALL_ACTIVE = f"{PREFIX}tasks:active"


def owner_active_key(owner: str) -> str:
    """The set of an owner's task ids that may still be queued or running (the quota of
    jobs at once); finished ones are pruned when the owner nears the quota."""
    return f"{PREFIX}owner:{owner}:active"


def state_key(owner: str | None, state: str) -> str:
    """The sorted set of an owner's finished tasks in ``state`` (every owner's, for None),
    scored by submission time: a filtered list reads only its page."""
    scope = f"owner:{owner}" if owner is not None else "tasks"
    return f"{PREFIX}{scope}:state:{state}"


def owner_channel(owner: str) -> str:
    """The channel announcing each new task of an owner (its id)."""
    return f"{PREFIX}owner:{owner}:submitted"


def idempotency_key(owner: str, key: str) -> str:
    """The string remembering which task an Idempotency-Key created."""
    return f"{PREFIX}idempotency:{owner}:{key}"


def session_key(session_id: str) -> str:
    """A browser's signed-in session (its owner), until sign-out or expiry."""
    return f"{PREFIX}session:{session_id}"


def upload_key(upload_id: str) -> str:
    """What an upload in the artifact store holds ("image" or "video")."""
    return f"{PREFIX}upload:{upload_id}"


def workflow_key(workflow_id: str) -> str:
    """A workflow's definition as POST /api/workflows made it (JSON): its stages of named
    steps, their inputs and task ids."""
    return f"{PREFIX}workflow:{workflow_id}"


def workflow_steps_key(workflow_id: str) -> str:
    """The sorted set of a workflow's task ids (a canvas's tasks: those with its id as
    Celery's ``root_id``), scored by when each was queued."""
    return f"{PREFIX}workflow:{workflow_id}:steps"


#: The sorted set of the artifact store's task folders and uploads, scored by when they
#: are to be deleted (epoch seconds): when their task expires.
ARTIFACTS_EXPIRING = f"{PREFIX}artifacts:expiring"


#: The hash of workers' heartbeats: hostname -> JSON of the queues it consumes, the tasks
#: it runs, and until when it counts as alive (my_app.store.heartbeats).
WORKERS = f"{PREFIX}workers:alive"


#: The hash of job counters, one field per event and kind ("succeeded:email").
JOB_COUNTERS = f"{PREFIX}metrics:counters"


def runtime_key(kind: str) -> str:
    """The hash of a kind's run-time histogram: a count per bucket, the sum and count."""
    return f"{PREFIX}metrics:runtime:{kind}"


def waiting_key(queue: str) -> str:
    """The sorted set of tasks waiting in ``queue`` that no worker has taken yet, scored
    by submission time: its first member is the oldest waiting job."""
    return f"{PREFIX}queue:{queue}:waiting"


#: The set of every schedule's id (an admin's list).
ALL_SCHEDULES = f"{PREFIX}schedules"


def owner_schedules_key(owner: str) -> str:
    """The set of an owner's schedule ids."""
    return f"{PREFIX}owner:{owner}:schedules"


def schedule_runs_key(schedule_id: str) -> str:
    """The sorted set of a schedule's latest runs (task ids), scored by when each was
    queued."""
    return f"{PREFIX}schedule:{schedule_id}:runs"


#: Where celery-redbeat keeps its entries, its schedule and its lock.
BEAT_PREFIX = f"{PREFIX}beat:"


def owner_webhook_key(owner: str) -> str:
    """The hash of an owner's webhook signing secrets (current, previous, until when)."""
    return f"{PREFIX}owner:{owner}:webhook"
