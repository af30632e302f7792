"""A task's timeline (my_app.lifecycle writes it, my_app.records reads it): every
transition, with its time, worker and attempt, bounded in length."""

from __future__ import annotations

from support import flaky, wait_for_state, wait_until

from my_app.records import TimelineEvent, decode_record
from my_app.store.ledger import TIMELINE_LENGTH, ledger_of


def events(task: dict) -> list[tuple[str, int]]:
    return [(entry["event"], entry["attempt"]) for entry in task["timeline"]]


def test_a_retried_task_shows_each_attempt_and_the_error_that_ended_it(app, client):
    """flaky fails once, then succeeds. Fails without the notes in RECEIVED or in the
    backend's RETRY (seen failing with the RETRY note removed: no "retry" entry)."""
    task_id = flaky.delay(1).id
    done = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    # The retry's message reaches the worker (it holds it until its ETA) as it is
    # published, which may be before the retry is stored: each attempt in order.
    by_attempt = {1: [], 2: []}
    for event, attempt in events(done):
        by_attempt[attempt].append(event)
    expected = {1: ["queued", "received", "retry"], 2: ["received", "finished"]}
    assert by_attempt == expected, done["timeline"]
    retry = next(entry for entry in done["timeline"] if entry["event"] == "retry")
    assert retry["detail"] == "ConnectionError: the server is not up yet"
    assert retry["worker"] == done["worker"]
    assert done["timeline"][-1]["detail"] == "SUCCESS"
    times = [entry["at"] for entry in done["timeline"]]
    assert times == sorted(times)


def test_a_job_notes_its_start_progress_milestones_and_cancel(client):
    """An 8-second slow job, cancelled past half-way: started, 25 and 50 %, cancel
    requested (by whom), finished REVOKED. Fails without the milestone check in
    ``lifecycle.progressed`` (seen failing: no "progress" entries)."""
    url = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 8}).headers["Location"]

    def past_half() -> dict | None:
        task = client.get(url).get_json()
        return task if (task.get("progress") or {}).get("percent", 0) >= 50 else None

    wait_until(past_half, timeout=30)
    assert client.delete(url).status_code == 202
    done = wait_for_state(client, url, {"REVOKED"})
    names = [event for event, _ in events(done)]
    assert names[:3] == ["queued", "received", "started"]
    assert names[-2:] == ["cancel_requested", "finished"]
    progress = [entry["detail"] for entry in done["timeline"] if entry["event"] == "progress"]
    assert [detail.split(" ")[0] for detail in progress] == ["25", "50"]
    assert done["timeline"][-2]["detail"] == f"by {done['owner']}"
    assert done["timeline"][-1]["detail"].startswith("REVOKED")
    assert {entry["attempt"] for entry in done["timeline"]} == {1}


def test_the_timeline_keeps_its_last_entries_and_skips_what_it_cannot_read(app, client):
    """Fails if the ledger keeps every note (the HDEL in NOTE_FUNCTION removed: 70
    entries), or if one unreadable entry breaks the record."""
    task_id = flaky.delay(0).id
    wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    with app.app_context():
        ledger = ledger_of(app)
        for number in range(70):
            ledger.record_note(task_id, TimelineEvent.PROGRESS, f"note {number}")
        ledger.client.hset(f"jobs:task:{task_id}", "timeline:999999", "{not json")
        raw = ledger.read_entry(task_id)
    task = client.get(f"/api/tasks/{task_id}").get_json()
    assert len(task["timeline"]) == TIMELINE_LENGTH
    assert task["timeline"][-1]["detail"] == "note 69"
    assert decode_record(raw, None).timeline[-1]["detail"] == "note 69"
    listed = client.get("/api/tasks").get_json()
    assert all("timeline" not in summary for summary in listed)
