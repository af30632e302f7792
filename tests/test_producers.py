"""Every producer's task is the ledger's: queued from a shell, by name, in a canvas, from
the ``celery call`` command or Flower, it shows on every route and can be cancelled and
retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import requests
from celery import chain, chord, group
from support import ROOT, flower_process, wait_for_state

from my_app.tasks import slow_task


def listed_ids(client):
    return {task["id"] for task in client.get("/api/tasks?page_size=100").get_json()}


def test_a_task_queued_with_delay_shows_everywhere(client):
    result = slow_task.delay("Ada", 1)
    status = wait_for_state(client, f"/status/{result.id}", {"SUCCESS"})
    assert status["result"] == "Task completed for Ada!"
    task = client.get(f"/api/tasks/{result.id}").get_json()
    assert task["kind"] == "slow"
    assert task["inputs"] == {"name": "Ada", "seconds": 1}  # positional args, by name
    assert task["queue"] == "default"
    assert task["worker"] and task["received_at"]
    assert result.id in listed_ids(client)


def test_a_countdown_task_waits_queued_then_runs(client):
    result = slow_task.apply_async(("Grace", 0), countdown=2)
    assert client.get(f"/api/tasks/{result.id}").get_json()["state"] == "QUEUED"
    assert wait_for_state(client, f"/status/{result.id}", {"SUCCESS"})["result"] == (
        "Task completed for Grace!"
    )


def test_a_task_sent_by_name_is_recorded_by_its_producer(app, client):
    celery_app = app.extensions["celery"]
    result = celery_app.send_task("my_app.tasks.slow_task", kwargs={"name": "Linus", "seconds": 0})
    task = wait_for_state(client, f"/api/tasks/{result.id}", {"SUCCESS"})
    assert (task["kind"], task["inputs"]) == ("slow", {"name": "Linus", "seconds": 0})


def test_chains_and_groups_record_every_task(client):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    chain(
        slow_task.si("one", 0).set(task_id=first), slow_task.si("two", 0).set(task_id=second)
    ).apply_async()
    members = group(slow_task.si(f"member {n}", 0) for n in range(3)).apply_async()
    for task_id in (first, second, *(result.id for result in members.results)):
        assert wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})["kind"] == "slow"
    assert {first, second} <= listed_ids(client)


def test_every_id_a_chain_returns_is_visible_and_cancellable_at_once(client):
    """The id ``chain(...).apply_async()`` returns is its last step's: it reads QUEUED,
    waiting for the step before it, the moment the call returns; cancelling the first
    step while it runs revokes the later ones, saying why.

    Fails without the canvas steps recorded at publish: the later steps were 404 until
    the earlier ones finished, and for good once one was cancelled."""
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    result = chain(
        slow_task.si("one", 30).set(task_id=first),
        slow_task.si("two", 0).set(task_id=second),
        slow_task.si("three", 0).set(task_id=third),
    ).apply_async()
    assert result.id == third
    last = client.get(f"/api/tasks/{third}")
    assert last.status_code == 200
    assert (last.get_json()["state"], last.get_json()["waiting_for"]) == ("QUEUED", second)
    assert client.get(f"/api/tasks/{second}").get_json()["waiting_for"] == first
    wait_for_state(client, f"/api/tasks/{first}", {"PROGRESS"})
    assert client.delete(f"/api/tasks/{first}").status_code == 202
    for step in (second, third):
        ended = wait_for_state(client, f"/api/tasks/{step}", {"REVOKED", "SUCCESS", "FAILURE"})
        assert ended["state"] == "REVOKED"
        assert first in ended["error"]["message"]
        assert "waiting_for" not in ended
    revoked = {task["id"] for task in client.get("/api/tasks?state=REVOKED").get_json()}
    assert {first, second, third} <= revoked


def test_a_chord_s_callback_is_visible_while_its_group_runs(client):
    """Fails without the chord's callback recorded at publish (404 until the group ends)."""
    callback_id = str(uuid.uuid4())
    header = [slow_task.si(f"part {n}", 1) for n in range(2)]
    result = chord(header)(slow_task.si("callback", 0).set(task_id=callback_id))
    assert result.id == callback_id
    waiting = client.get(f"/api/tasks/{callback_id}").get_json()
    assert waiting["state"] == "QUEUED" and waiting["waiting_for"]
    assert wait_for_state(client, f"/api/tasks/{callback_id}", {"SUCCESS"})["kind"] == "slow"


def test_a_task_queued_with_celery_call_shows_in_the_api(client, redis_url):
    env = {**os.environ, "REDIS_URL": f"{redis_url}/0", "APP_CONFIG": "testing"}
    called = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "celery_worker", "call", "my_app.tasks.slow_task",
         "--kwargs", json.dumps({"name": "from the shell", "seconds": 0})],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    task_id = called.stdout.strip()
    task = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    assert task["result"] == "Task completed for from the shell!"


def test_a_task_queued_from_flower_shows_in_the_api(client, redis_url):
    with flower_process(f"{redis_url}/0") as flower:
        answer = requests.post(
            f"{flower}/api/task/async-apply/my_app.tasks.slow_task",
            json={"kwargs": {"name": "Flower", "seconds": 0}},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        task_id = answer.json()["task-id"]
    task = wait_for_state(client, f"/api/tasks/{task_id}", {"SUCCESS"})
    assert (task["kind"], task["inputs"]["name"]) == ("slow", "Flower")


def test_a_delay_task_can_be_cancelled_and_retried(client):
    result = slow_task.delay("Hopper", 60)
    url = f"/api/tasks/{result.id}"
    wait_for_state(client, url, {"PROGRESS"})
    assert client.delete(url).status_code == 202
    wait_for_state(client, url, {"REVOKED"})
    retried = client.post(f"{url}/retry")
    assert retried.status_code == 202
    again = retried.get_json()
    assert again["inputs"] == {"name": "Hopper", "seconds": 60}
    assert again["links"]["retry_of"] == url
    client.delete(again["links"]["cancel"])


def test_the_feed_announces_a_delay_task(live_server):
    with requests.get(f"{live_server}/api/tasks/events", stream=True, timeout=30) as feed:
        lines = feed.iter_lines(decode_unicode=True)
        assert next(lines) == ": connected"
        result = slow_task.delay("on the feed", 0)
        for line in lines:
            if line.startswith("data: ") and json.loads(line[6:])["id"] == result.id:
                seen = json.loads(line[6:])
                break
    assert seen["kind"] == "slow"
