"""Schedules: periodic jobs, and one-off jobs held until their time, run by celery beat
with celery-redbeat's Redis-backed scheduler.

Each schedule is a redbeat entry (``ScheduleEntry``) in Redis: a job kind's task, its
inputs, when it runs (a crontab in a time zone, or an interval), whether it is paused,
and redbeat's own ``last_run_at`` and run count. Beat (``make beat``) loads only the
entries due soon, takes redbeat's lock so a second beat waits instead of firing twice,
and queues each run with Celery's ``apply_async``: the run is a normal task whose
message carries its owner and its schedule (``schedule`` header), which the lifecycle
files. Nothing of a schedule lives in a process: a restart of beat, or of everything
with Redis's data kept, loses none.

A one-off job (``run_at`` or ``countdown`` on a submission) is recorded in the ledger at
once, held (``held_until``), and given a redbeat entry due at its time: no worker holds
its message, so Redis's visibility timeout cannot redeliver it early, and 10,000 of them
are 10,000 small hashes in Redis and one sorted set, not messages in a worker's memory.
When beat queues it, the lifecycle releases it in the ledger and deletes its entry; an
entry whose publish failed stays and fires again a minute later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis
from redbeat.schedules import rrule

from .store.keys import ALL_SCHEDULES, owner_schedules_key, schedule_runs_key

#: The message header naming the schedule a run was queued by.
SCHEDULE_HEADER = "schedule"
#: Where the entries' names start: a schedule's entry is its id, a one-off's this + its
#: task id.
ONE_OFF_PREFIX = "one-off:"
#: How many of a schedule's latest runs it lists.
RECENT_RUNS = 10


class ScheduleError(ValueError):
    """A schedule that cannot be: a bad crontab, an unknown time zone."""


class ZonedCrontab(crontab):
    """Celery's crontab, read in a time zone of its own (wall-clock time there, daylight
    saving included) rather than the Celery app's."""

    def __init__(self, *args: Any, timezone: str = "UTC", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)

    @property
    def tz(self) -> tzinfo:  # type: ignore[override]
        """The schedule's own time zone."""
        return self.zone

    def now(self) -> datetime:
        """Now, in the schedule's time zone."""
        return datetime.now(self.zone)

    def remaining_delta(
        self, last_run_at: datetime, tz: tzinfo | None = None, **kwargs: Any
    ) -> Any:
        """Celery's computation, on the last run's wall-clock time in this zone."""
        last = self.maybe_make_aware(last_run_at).astimezone(self.zone)
        return super().remaining_delta(last, tz, **kwargs)

    def __reduce__(self) -> Any:
        return (
            self.__class__,
            (self._orig_minute, self._orig_hour, self._orig_day_of_week,
             self._orig_day_of_month, self._orig_month_of_year),
            {"timezone": self.timezone, "zone": self.zone},
        )  # fmt: skip

    def __eq__(self, other: Any) -> bool:
        return super().__eq__(other) and getattr(other, "timezone", None) == self.timezone

    def __hash__(self) -> int:
        return hash((str(self), self.timezone))


class ScheduleJSONEncoder(RedBeatJSONEncoder):
    """redbeat's encoder, keeping a ``ZonedCrontab``'s time zone."""

    def default(self, obj: Any) -> Any:
        """A zoned crontab as redbeat's crontab plus its zone."""
        encoded = super().default(obj)
        if isinstance(obj, ZonedCrontab):
            encoded = {**encoded, "__type__": "zoned_crontab", "timezone": obj.timezone}
        return encoded


class ScheduleJSONDecoder(RedBeatJSONDecoder):
    """redbeat's decoder, reading a ``ZonedCrontab`` back."""

    def dict_to_object(self, d: dict[str, Any]) -> Any:
        """A zoned crontab, else what redbeat decodes."""
        if d.get("__type__") == "zoned_crontab":
            fields_ = {key: value for key, value in d.items() if key != "__type__"}
            return ZonedCrontab(**fields_)
        return super().dict_to_object(d)


class ScheduleEntry(RedBeatSchedulerEntry):
    """A redbeat entry whose definition also keeps a schedule's label, when it was
    created, and a crontab's time zone."""

    def __init__(
        self, *args: Any, label: str = "", created_at: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.label = label
        self.created_at = created_at

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        """The stored definition, with our zoned crontab."""
        return json.loads(definition, cls=ScheduleJSONDecoder)

    def save(self) -> ScheduleEntry:
        """Store the entry as redbeat's ``save`` does (its definition, its first
        ``last_run_at`` unless one is stored, its place in the schedule), with the
        fields above encoded by our encoder."""
        definition = {
            "name": self.name,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.schedule,
            "enabled": self.enabled,
            "label": self.label,
            "created_at": self.created_at,
        }
        meta = {"last_run_at": self.last_run_at}
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "definition", json.dumps(definition, cls=ScheduleJSONEncoder))
            pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=ScheduleJSONEncoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        return self


class ScheduleRunner(RedBeatScheduler):
    """redbeat's scheduler with our entries (``beat_scheduler``, so ``celery beat``
    runs it without ``-S``), whose Redis calls wait out an outage of up to
    REDIS_OUTAGE_GRACE_SECONDS (redbeat's ``retry_period``) where the web's fail at once."""

    Entry = ScheduleEntry

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        flask_app = getattr(app.Task, "flask_app", None)
        if flask_app is not None:
            grace = flask_app.config["REDIS_OUTAGE_GRACE_SECONDS"]
            options = {**(app.conf.redbeat_redis_options or {}), "retry_period": grace}
            app.conf.redbeat_redis_options = options
            if getattr(app, "redbeat_conf", None) is not None:  # read already
                app.redbeat_conf.redbeat_redis_options = options
        super().__init__(app, *args, **kwargs)


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as the API shows it."""

    id: str
    name: str
    owner: str
    kind: str
    task_name: str
    inputs: dict[str, Any]
    cron: str | None
    timezone: str | None
    every_seconds: float | None
    paused: bool
    created_at: str | None
    last_run_at: str | None
    next_run_at: str | None
    total_runs: int
    recent_runs: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The public fields."""
        return {
            "id": self.id, "name": self.name, "owner": self.owner, "kind": self.kind,
            "inputs": self.inputs, "cron": self.cron, "timezone": self.timezone,
            "every_seconds": self.every_seconds, "paused": self.paused,
            "created_at": self.created_at, "last_run_at": self.last_run_at,
            "next_run_at": self.next_run_at, "total_runs": self.total_runs,
            "recent_runs": list(self.recent_runs),
        }  # fmt: skip


def timing(
    cron: str | None, timezone: str | None, every_seconds: float | None, celery_app: Celery
) -> BaseSchedule:
    """The Celery schedule of a crontab expression in a time zone, or of an interval;
    raises ScheduleError saying what is wrong."""
    if cron is not None:
        zone = timezone or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ScheduleError(f"Unknown time zone {zone!r}.") from error
        fields_ = cron.split()
        if len(fields_) != 5:
            raise ScheduleError(
                "A crontab has five fields: minute hour day-of-month month day-of-week."
            )
        minute, hour, day_of_month, month_of_year, day_of_week = fields_
        try:
            return ZonedCrontab(
                minute, hour, day_of_week, day_of_month, month_of_year,
                timezone=zone, app=celery_app,
            )  # fmt: skip
        except (ValueError, IndexError, TypeError) as error:
            raise ScheduleError(f"Not a crontab expression: {error}") from error
    if every_seconds is None:
        raise ScheduleError("Give a crontab (cron) or an interval (every_seconds).")
    return schedule(timedelta(seconds=every_seconds), app=celery_app)


def ensure_conf(celery_app: Celery) -> None:
    """redbeat's configuration on the Celery app (its key prefix), once."""
    from redbeat.schedulers import ensure_conf as redbeat_conf

    redbeat_conf(celery_app)


def stored_entry(celery_app: Celery, name: str) -> ScheduleEntry | None:
    """The entry named ``name``, or None."""
    ensure_conf(celery_app)
    try:
        return ScheduleEntry.from_key(ScheduleEntry.generate_key(celery_app, name), app=celery_app)
    except (KeyError, ValueError, TypeError):  # absent, or not one redbeat can read
        return None


def save_schedule(
    celery_app: Celery,
    schedule_id: str,
    *,
    owner: str,
    name: str,
    task_name: str,
    inputs: dict[str, Any],
    timing_: BaseSchedule,
    paused: bool,
    created_at: str,
    restart: bool,
) -> None:
    """Create or replace a schedule's entry; ``restart`` counts its next run from now
    (a new schedule, a changed timing, a resume), so no missed run fires at once."""
    ensure_conf(celery_app)
    stored = stored_entry(celery_app, schedule_id)
    entry = ScheduleEntry(
        name=schedule_id,
        task=task_name,
        schedule=timing_,
        kwargs=inputs,
        enabled=not paused,
        options={"headers": {"owner": owner, SCHEDULE_HEADER: schedule_id}},
        label=name,
        created_at=created_at,
        app=celery_app,
    )
    entry.total_run_count = stored.total_run_count if stored else 0
    entry.last_run_at = celery_app.now() if restart or stored is None else stored.last_run_at
    meta = {"last_run_at": entry.last_run_at, "total_run_count": entry.total_run_count}
    client = get_redis(celery_app)
    client.hset(entry.key, "meta", json.dumps(meta, cls=ScheduleJSONEncoder))
    entry.save()
    pipe = client.pipeline(transaction=False)
    pipe.sadd(owner_schedules_key(owner), schedule_id)
    pipe.sadd(ALL_SCHEDULES, schedule_id)
    pipe.execute()


def read_schedule(celery_app: Celery, schedule_id: str) -> ScheduleRecord | None:
    """The schedule with this id, or None."""
    entry = stored_entry(celery_app, schedule_id)
    if entry is None or entry.name.startswith(ONE_OFF_PREFIX):
        return None
    headers = (entry.options or {}).get("headers") or {}
    runs = get_redis(celery_app).zrevrange(schedule_runs_key(schedule_id), 0, RECENT_RUNS - 1,
                                           withscores=True)  # fmt: skip
    timing_ = entry.schedule
    due = entry.due_at if entry.enabled else None
    task = celery_app.tasks.get(entry.task)
    return ScheduleRecord(
        id=schedule_id,
        name=getattr(entry, "label", "") or "",
        owner=str(headers.get("owner") or ""),
        kind=getattr(task, "kind", None) or entry.task,
        task_name=entry.task,
        inputs=dict(entry.kwargs or {}),
        cron=cron_text(timing_) if isinstance(timing_, crontab) else None,
        timezone=getattr(timing_, "timezone", None) if isinstance(timing_, crontab) else None,
        every_seconds=(
            timing_.run_every.total_seconds() if isinstance(timing_, schedule) else None
        ),
        paused=not entry.enabled,
        created_at=getattr(entry, "created_at", None),
        last_run_at=datetime.fromtimestamp(runs[0][1], UTC).isoformat() if runs else None,
        # redbeat counts from when it last looked, a few milliseconds off: to the second.
        next_run_at=(
            datetime.fromtimestamp(round(due.timestamp()), UTC).isoformat() if due else None
        ),
        total_runs=int(entry.total_run_count or 0),
        recent_runs=tuple(task_id for task_id, _ in runs),
    )


def cron_text(timing_: crontab) -> str:
    """A crontab as the five fields it was made from."""
    return " ".join(
        str(part)
        for part in (
            timing_._orig_minute, timing_._orig_hour, timing_._orig_day_of_month,
            timing_._orig_month_of_year, timing_._orig_day_of_week,
        )
    )  # fmt: skip


def schedule_ids(celery_app: Celery, owner: str | None) -> list[str]:
    """The ids of the owner's schedules (everyone's, for None)."""
    ensure_conf(celery_app)
    key = ALL_SCHEDULES if owner is None else owner_schedules_key(owner)
    return sorted(get_redis(celery_app).smembers(key))


def delete_schedule(celery_app: Celery, record: ScheduleRecord) -> None:
    """Delete a schedule: beat no longer runs it; its past runs stay."""
    ensure_conf(celery_app)
    ScheduleEntry(name=record.id, app=celery_app).delete()
    pipe = get_redis(celery_app).pipeline(transaction=False)
    pipe.srem(owner_schedules_key(record.owner), record.id)
    pipe.srem(ALL_SCHEDULES, record.id)
    pipe.delete(schedule_runs_key(record.id))
    pipe.execute()


def schedule_ran(celery_app: Celery, schedule_id: str, task_id: str, at: float) -> None:
    """File a run (a task queued with the schedule's header) under its schedule."""
    ensure_conf(celery_app)
    pipe = get_redis(celery_app).pipeline(transaction=False)
    pipe.zadd(schedule_runs_key(schedule_id), {task_id: at})
    pipe.zremrangebyrank(schedule_runs_key(schedule_id), 0, -RECENT_RUNS - 1)
    pipe.execute()


# One-off jobs.


def due_second(run_at: datetime) -> datetime:
    """``run_at`` rounded up to its next whole second: redbeat's rrule drops a time's
    microseconds, which would run the job early."""
    whole = run_at.replace(microsecond=0)
    return whole if whole == run_at else whole + timedelta(seconds=1)


def hold_one_off(
    celery_app: Celery,
    task_name: str,
    task_id: str,
    run_at: datetime,
    *,
    args: list[Any],
    kwargs: dict[str, Any],
    headers: dict[str, Any],
) -> None:
    """Give a held job an entry that beat queues at ``run_at`` (with its own task id and
    headers), and a minute after each failed publish until one succeeds."""
    ensure_conf(celery_app)
    entry = ScheduleEntry(
        name=f"{ONE_OFF_PREFIX}{task_id}",
        task=task_name,
        schedule=rrule("MINUTELY", dtstart=run_at, app=celery_app),
        args=args,
        kwargs=kwargs,
        options={"task_id": task_id, "headers": headers},
        app=celery_app,
    )
    # Counted from now, its first run is run_at (never run, redbeat would score it now
    # and load it at every tick until then).
    entry.last_run_at = min(celery_app.now(), run_at - timedelta(seconds=1))
    entry.save()


def release_one_off(celery_app: Celery, task_id: str) -> bool:
    """Delete a held job's entry (it was queued, or cancelled): redbeat's ``delete``,
    saying whether there was one."""
    ensure_conf(celery_app)
    entry = ScheduleEntry(name=f"{ONE_OFF_PREFIX}{task_id}", app=celery_app)
    pipe = get_redis(celery_app).pipeline(transaction=False)
    pipe.zrem(celery_app.redbeat_conf.schedule_key, entry.key)
    pipe.delete(entry.key)
    removed, _ = pipe.execute()
    return bool(removed)
