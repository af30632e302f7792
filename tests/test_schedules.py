"""Schedules and one-off jobs (my_app.schedules): run by real ``celery beat`` processes
with celery-redbeat, against real Redis and workers, through restarts of everything."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from support import (
    ADMIN,
    ALICE,
    BOB,
    beat_process,
    scaled,
    wait_for_state,
    wait_for_task,
    wait_until,
    web_process,
    worker_process,
)

from my_app import create_app
from my_app.schedules import ONE_OFF_PREFIX, ScheduleEntry, ensure_conf
from my_app.store.broker_queues import waiting_messages

pytestmark = pytest.mark.timeout(180)

SLOW = {"name": "Ada", "seconds": 0}


@pytest.fixture
def schedules(app, client):
    """The API's schedules, deleted after the test (a later beat must not run them)."""
    yield client
    for schedule in client.get("/api/schedules").get_json():
        client.delete(schedule["links"]["self"])


def runs_of(client, schedule: dict) -> list[dict]:
    """A schedule's runs, oldest first, as the task list shows them."""
    listed = client.get(f"/api/tasks?schedule={schedule['id']}&page_size=100").get_json()
    return sorted(listed, key=lambda task: task["submitted_at"])


def at_least(count: int, runs: list[dict]) -> list[dict] | None:
    return runs if len(runs) >= count else None


def seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def test_a_schedule_fires_on_time_twice_then_pauses_and_resumes(schedules, redis_url, tmp_path):
    """Every 2 s: two runs about 2 s apart, each a normal task linking back; paused, none
    for 5 s; resumed, it runs again. Fails if pause leaves the entry enabled (seen
    failing with ``enabled=not paused`` replaced by True: runs went on while paused)."""
    client = schedules
    created = client.post(
        "/api/schedules", json={"name": "tick", "kind": "slow", "inputs": SLOW, "every_seconds": 2}
    )
    assert created.status_code == 201
    schedule = created.get_json()
    assert schedule["next_run_at"] is not None and schedule["total_runs"] == 0
    with beat_process(f"{redis_url}/0", output=(tmp_path / "beat.log").open("w")):
        runs = wait_until(lambda: at_least(2, runs_of(client, schedule)), timeout=30)
        assert 1.0 <= seconds_between(runs[0]["submitted_at"], runs[1]["submitted_at"]) <= 4.0
        done = wait_for_state(client, runs[0]["links"]["self"], {"SUCCESS"})
        assert done["schedule"] == schedule["id"]
        assert done["links"]["schedule"].endswith(schedule["id"])
        assert done["owner"] == schedule["owner"]

        paused = client.post(schedule["links"]["pause"]).get_json()
        assert paused["paused"] is True and paused["next_run_at"] is None
        wait_until(lambda: True, timeout=1)
        before = len(runs_of(client, schedule))
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while datetime.now(UTC) < deadline:
            assert len(runs_of(client, schedule)) == before
        resumed = client.post(schedule["links"]["resume"]).get_json()
        assert resumed["paused"] is False
        wait_until(lambda: len(runs_of(client, schedule)) > before, timeout=10)
    shown = client.get(schedule["links"]["self"]).get_json()
    assert shown["total_runs"] >= 3
    latest = runs_of(client, schedule)[-1]
    assert shown["links"]["last_run"].endswith(latest["id"])
    # Beat's publish hook files the run when it queued it; a worker quick enough to
    # receive it first files its entry a few milliseconds earlier (seen in CI: 3.4 ms).
    assert abs(seconds_between(shown["last_run_at"], latest["submitted_at"])) < 0.5


def test_two_beats_fire_each_run_once_and_the_second_takes_over(schedules, redis_url, tmp_path):
    """Two beat processes on one schedule of every second: one holds redbeat's lock, so
    each run is queued once, by one of them; when it stops, the other takes over. Fails
    without the lock (seen failing with ``redbeat_lock_key`` set to None: both sent
    runs)."""
    client = schedules
    schedule = client.post(
        "/api/schedules", json={"kind": "slow", "inputs": SLOW, "every_seconds": 1}
    ).get_json()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with (
        beat_process(f"{redis_url}/0", output=logs[0].open("w")) as first,
        beat_process(f"{redis_url}/0", output=logs[1].open("w")) as second,
    ):
        wait_until(lambda: len(runs_of(client, schedule)) >= 6, timeout=30)
        runs = runs_of(client, schedule)
        gaps = [seconds_between(a["submitted_at"], b["submitted_at"])
                for a, b in itertools.pairwise(runs)]  # fmt: skip
        assert min(gaps) > 0.5, gaps  # never two runs for one time
        sending = ["Sending due task" in log.read_text() for log in logs]
        assert sending.count(True) == 1, sending  # the other waits for the lock
        holder, other = (first, second) if sending[0] else (second, first)
        holder.terminate()
        holder.wait(timeout=30)
        count = len(runs)
        # The lock expires five loop intervals after its holder's last tick.
        wait_until(lambda: len(runs_of(client, schedule)) >= count + 3, timeout=30)
        assert other.poll() is None


def test_a_restart_of_everything_keeps_schedules_and_held_jobs(redis_process, tmp_path):
    """Redis (AOF), the web, a worker and beat all stop and start again: the schedule
    runs on, a one-off due meanwhile runs at its time, and jobs held for tomorrow are
    still held, in no queue and in no worker's memory. Fails if held jobs are published
    with an ETA instead (a message per job in the queue: ``waiting_messages`` > 0)."""
    url = redis_process.url
    output = (tmp_path / "services.log").open("w")
    tomorrow = scaled(10_000, minimum=200)
    with web_process(url, output=output) as web:
        schedule = requests.post(
            f"{web}/api/schedules", json={"kind": "slow", "inputs": SLOW, "every_seconds": 2},
            timeout=10,
        ).json()  # fmt: skip
        soon = requests.post(f"{web}/api/tasks/slow?countdown=8", json=SLOW, timeout=10).json()
        held = [
            requests.post(f"{web}/api/tasks/slow?countdown=86400", json=SLOW, timeout=10).json()
            for _ in range(min(tomorrow, 50))
        ]
    app = create_app("testing", REDIS_URL=url)
    celery_app = app.extensions["celery"]
    with app.test_request_context():
        from my_app.owners import current_owner
        from my_app.submission import submit_job

        run_at = datetime.now(UTC) + timedelta(days=1)
        owner = current_owner()
        for _ in range(tomorrow - len(held)):
            submit_job("my_app.tasks.slow_task", dict(SLOW), owner=owner, run_at=run_at)
    ensure_conf(celery_app)
    beat_schedule = celery_app.redbeat_conf.schedule_key
    client = redis_process_client(url)
    assert client.zcount(beat_schedule, run_at.timestamp() - 86400 * 2, "+inf") >= tomorrow
    assert waiting_messages(celery_app, {"default", "heavy"}) == {"default": 0, "heavy": 0}

    with worker_process(url, output=output), beat_process(url, output=output):
        wait_until(lambda: runs_count(url, schedule) >= 1, timeout=30)
    redis_process.restart()
    assert soon["state"] == "QUEUED" and soon["run_at"]
    with (
        web_process(url, output=output) as web,
        worker_process(url, output=output),
        beat_process(url, output=output),
    ):
        before = runs_count(url, schedule)
        wait_until(lambda: runs_count(url, schedule) >= before + 2, timeout=30)
        ran = wait_for_task(web, soon["id"], {"SUCCESS"}, timeout=60)
        assert ran["started_at"] >= soon["run_at"]
        # Held, then queued by beat (a worker may note it received in between).
        events = [e["event"] for e in ran["timeline"]]
        assert ran["timeline"][0]["detail"].startswith("held until") and "queued" in events[1:]
        still = requests.get(f"{web}/api/tasks/{held[0]['id']}", timeout=10).json()
        assert still["state"] == "QUEUED" and "warning" not in still
        assert waiting_messages(celery_app, {"default", "heavy"}) == {"default": 0, "heavy": 0}
        scheduled = celery_app.control.inspect(timeout=2).scheduled() or {}
        assert all(not jobs for jobs in scheduled.values())  # no ETA message in a worker
        assert client.zcount(beat_schedule, run_at.timestamp() - 86400 * 2, "+inf") >= tomorrow
        listed = requests.get(f"{web}/api/schedules", timeout=10).json()
        assert [s["id"] for s in listed] == [schedule["id"]]
    # The fired one-off's entry is gone; the held ones' remain.
    assert not client.exists(ScheduleEntry.generate_key(celery_app, ONE_OFF_PREFIX + soon["id"]))
    assert client.exists(ScheduleEntry.generate_key(celery_app, ONE_OFF_PREFIX + held[0]["id"]))


def redis_process_client(url: str):
    import redis

    return redis.Redis.from_url(url, decode_responses=True)


def runs_count(url: str, schedule: dict) -> int:
    return redis_process_client(url).zcard(f"jobs:schedule:{schedule['id']}:runs")


def test_cancelling_a_held_job_revokes_it_and_it_never_runs(schedules, redis_url, tmp_path):
    """Cancelled before its time: REVOKED at once, beat's entry gone, and beat never
    queues it. Fails if cancel leaves beat's entry (seen failing with
    ``release_one_off`` skipped in ``lifecycle.cancel``: the entry stayed, and beat
    queued the job at its time)."""
    client = schedules
    task = client.post("/api/tasks/slow?countdown=2", json=SLOW).get_json()
    assert task["state"] == "QUEUED" and task["run_at"]
    assert client.delete(task["links"]["self"]).status_code == 202
    wait_for_state(client, task["links"]["self"], {"REVOKED"}, timeout=10)
    celery_app = client.application.extensions["celery"]
    ensure_conf(celery_app)
    entry = ScheduleEntry.generate_key(celery_app, ONE_OFF_PREFIX + task["id"])
    assert not client.application.extensions["redis"].exists(entry)
    with beat_process(f"{redis_url}/0", output=(tmp_path / "beat.log").open("w")):
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while datetime.now(UTC) < deadline:
            shown = client.get(task["links"]["self"]).get_json()
            events = [entry["event"] for entry in shown["timeline"]]
            assert events == ["queued", "cancel_requested", "finished"], events
    assert shown["started_at"] is None and shown["state"] == "REVOKED"


def test_run_at_is_held_until_then_and_bad_times_are_422(schedules):
    """Fails if run_at is ignored (the job runs at once: seen failing with
    ``held_until`` answering None)."""
    client = schedules
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    held = client.post(f"/api/tasks/slow?run_at={requests.utils.quote(later)}", json=SLOW)
    assert held.status_code == 202
    # To its next whole second (redbeat's rrule has no microseconds: never early).
    run_at = datetime.fromisoformat(held.get_json()["run_at"])
    assert timedelta(0) <= run_at - datetime.fromisoformat(later) < timedelta(seconds=1)
    assert run_at.microsecond == 0
    wait_until(lambda: True, timeout=2)
    assert client.get(held.get_json()["links"]["self"]).get_json()["state"] == "QUEUED"
    for query, field in (
        ("countdown=5&run_at=2030-01-01T00:00:00Z", "countdown"),
        ("countdown=-1", "countdown"),
        ("run_at=2030-01-01T00:00:00", "run_at"),  # no UTC offset
        ("countdown=99999999", "run_at"),  # past MAX_RUN_AT_SECONDS
    ):
        answer = client.post(f"/api/tasks/slow?{query}", json=SLOW)
        assert answer.status_code == 422, query
        assert field in str(answer.get_json()["errors"]), query
    past = client.post("/api/tasks/slow?run_at=2020-01-01T00:00:00Z", json=SLOW).get_json()
    wait_for_state(client, past["links"]["self"], {"SUCCESS"})  # due already: runs now


def test_a_crontab_runs_in_its_time_zone_and_bad_schedules_are_422(schedules):
    """03:00 in Paris is 02:00 or 01:00 UTC, whatever the server's zone. Fails if the
    crontab is read in UTC (seen failing with ZonedCrontab.remaining_delta removed:
    next_run_at at 03:00 UTC)."""
    client = schedules
    created = client.post(
        "/api/schedules",
        json={"kind": "slow", "inputs": SLOW, "cron": "0 3 * * *", "timezone": "Europe/Paris"},
    ).get_json()  # fmt: skip
    paris = ZoneInfo("Europe/Paris")
    now = datetime.now(paris)
    expected = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if expected <= now:
        expected = (expected + timedelta(days=1)).replace(hour=3)
    assert datetime.fromisoformat(created["next_run_at"]) == expected.astimezone(UTC)
    assert (created["cron"], created["timezone"]) == ("0 3 * * *", "Europe/Paris")
    edited = client.patch(created["links"]["self"], json={"every_seconds": 60}).get_json()
    assert (edited["cron"], edited["every_seconds"]) == (None, 60)
    for body, field in (
        ({"kind": "slow", "inputs": SLOW, "cron": "61 * * * *"}, "cron"),
        ({"kind": "slow", "inputs": SLOW, "cron": "* * *"}, "cron"),
        ({"kind": "slow", "inputs": SLOW, "cron": "0 3 * * *", "timezone": "Mars/Base"},
         "timezone"),
        ({"kind": "slow", "inputs": SLOW}, "cron"),
        ({"kind": "slow", "inputs": SLOW, "cron": "0 3 * * *", "every_seconds": 5},
         "every_seconds"),
        ({"kind": "slow", "inputs": {"seconds": "x"}, "every_seconds": 5}, "inputs"),
        ({"kind": "video", "inputs": {}, "every_seconds": 5}, "kind"),
    ):  # fmt: skip
        answer = client.post("/api/schedules", json=body)
        assert answer.status_code == 422, body
        assert field in str(answer.get_json()["errors"]), body


def test_another_owner_gets_404_for_a_schedule(keyed_app):
    """Fails if a schedule is found by id alone (``schedule_or_404`` without its owner
    check: bob read alice's schedule)."""
    client = keyed_app.test_client()
    alice, bob, root = ALICE, BOB, ADMIN
    made = client.post(
        "/api/schedules", json={"kind": "slow", "inputs": SLOW, "every_seconds": 60}, headers=alice
    ).get_json()
    try:
        for method in ("get", "patch", "delete"):
            answer = getattr(client, method)(made["links"]["self"], json={}, headers=bob)
            assert answer.status_code == 404, method
        assert client.post(made["links"]["pause"], headers=bob).status_code == 404
        assert client.get("/api/schedules", headers=bob).get_json() == []
        assert [s["id"] for s in client.get("/api/schedules", headers=root).get_json()] == [
            made["id"]
        ]
    finally:
        client.delete(made["links"]["self"], headers=alice)
