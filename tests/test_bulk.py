"""Bulk actions (POST /api/tasks/cancel and /api/tasks/retry) over the list's filters,
and the dead letters: real tasks on a real worker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import ADMIN, ALICE, BOB, explode, flaky, wait_for_state, wait_until

pytestmark = pytest.mark.timeout(180)


def since(moment: datetime) -> str:
    return moment.isoformat()


def test_bulk_retry_of_200_failed_tasks_queues_200(client):
    """200 failures, one call: 200 new tasks, each retry_of its failure; a second call
    queues none (each is already run again). Fails if the bulk retry stops at the
    default limit, or retries twice (seen failing without the ``retried_by`` check: the
    second call queued 200 more)."""
    started = datetime.now(UTC)
    failed = [explode.delay(f"boom {n}").id for n in range(200)]
    for task_id in failed[-1:] + failed[:1]:
        wait_for_state(client, f"/api/tasks/{task_id}", {"FAILURE"})
    wait_until(lambda: all(client.get(f"/api/tasks/{t}").get_json()["state"] == "FAILURE"
                           for t in failed), timeout=60)  # fmt: skip
    body = {"state": "FAILURE", "submitted_after": since(started), "limit": 500}
    failures_end = datetime.now(UTC)
    answer = client.post("/api/tasks/retry", json=body)
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert result["acted_on"] == 200 and len(set(result["task_ids"])) == 200
    assert result["skipped"] == [] and result["more"] is False
    again = client.get(f"/api/tasks/{result['task_ids'][0]}").get_json()
    original = client.get(again["links"]["retry_of"]).get_json()
    assert original["id"] in failed
    assert original["retried_by"] == again["id"]
    assert original["links"]["retried_by"].endswith(again["id"])
    body["submitted_before"] = since(failures_end)  # the failures, not their re-runs
    second = client.post("/api/tasks/retry", json=body).get_json()
    assert second["acted_on"] == 0 and second["skipped_count"] == 200
    assert len(second["skipped"]) == 100  # the first hundred, each with why
    assert second["skipped"][0]["reason"].startswith("already run again as ")


def test_dead_letters_are_failures_whose_retries_ran_out_and_retry_redrives_them(client):
    """flaky(9) retries 3 times, then fails: a dead letter; explode fails at once: not
    one. Fails without the retry in the timeline deciding it (seen failing with
    ``dead_letter`` set for every FAILURE: the explode task was listed)."""
    started = datetime.now(UTC)
    exhausted = flaky.delay(9).id
    plain = explode.delay("once").id
    wait_for_state(client, f"/api/tasks/{plain}", {"FAILURE"})
    dead = wait_for_state(client, f"/api/tasks/{exhausted}", {"FAILURE"}, timeout=60)
    assert dead["dead_letter"] is True
    assert client.get(f"/api/tasks/{plain}").get_json()["dead_letter"] is False
    query = {"dead_letter": "true", "submitted_after": since(started)}
    listed = client.get("/api/tasks", query_string=query).get_json()
    assert [task["id"] for task in listed] == [exhausted]
    redrive = client.post(
        "/api/tasks/retry", json={"dead_letter": True, "submitted_after": since(started)}
    ).get_json()
    assert redrive["acted_on"] == 1
    assert client.get(f"/api/tasks/{exhausted}").get_json()["dead_letter"] is False
    assert client.get("/api/tasks", query_string=query).get_json() == []


def test_bulk_cancel_stops_what_matches_bounded_by_limit(client):
    """Four running slow jobs and one finished: limit 3 cancels 3 and says more; the next
    call cancels the fourth and skips the finished one and the three being cancelled,
    saying why. Fails if the filter is ignored (the job of another kind is cancelled:
    seen failing with ``matches`` answering True)."""
    started = datetime.now(UTC)
    finished = client.post("/api/tasks/slow", json={"name": "done", "seconds": 0}).get_json()
    wait_for_state(client, finished["links"]["self"], {"SUCCESS"})
    running = [
        client.post("/api/tasks/slow", json={"name": f"r{n}", "seconds": 30}).get_json()["id"]
        for n in range(4)
    ]
    explode.delay("other kind")
    body = {"kind": "slow", "submitted_after": since(started), "limit": 3}
    first = client.post("/api/tasks/cancel", json=body).get_json()
    assert first["acted_on"] == 3 and first["more"] is True
    second = client.post("/api/tasks/cancel", json=body).get_json()
    assert second["acted_on"] == 1 and second["more"] is False
    assert set(first["task_ids"] + second["task_ids"]) == set(running)
    reasons = {skip["id"]: skip["reason"] for skip in second["skipped"]}
    assert reasons[finished["id"]] == "already finished (SUCCESS)"
    assert len(reasons) == second["skipped_count"] == 4  # and the three cancelled first
    for task_id in running:
        wait_for_state(client, f"/api/tasks/{task_id}", {"REVOKED"})


def test_only_an_admin_acts_on_another_owners_tasks(keyed_app):
    """Fails if a non-admin may name another owner (``checked_filter`` without its 403)."""
    client = keyed_app.test_client()
    started = datetime.now(UTC)
    task = client.post("/api/tasks/slow", json={"name": "a", "seconds": 30}, headers=ALICE)
    assert task.status_code == 202
    body = {"owner": "alice", "submitted_after": since(started)}
    assert client.post("/api/tasks/cancel", json=body, headers=BOB).status_code == 403
    mine = client.post("/api/tasks/cancel", json={"submitted_after": since(started)},
                       headers=BOB).get_json()  # fmt: skip
    assert mine["acted_on"] == 0
    done = client.post("/api/tasks/cancel", json=body, headers=ADMIN).get_json()
    assert done["task_ids"] == [task.get_json()["id"]]
