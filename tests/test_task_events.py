"""The live event stream, read by a real HTTP client from a live server."""

from __future__ import annotations

import json
import os
import threading

import requests
from support import open_stream, serving, streams_held, wait_until


def submit_slow(live_server: str, seconds: int) -> dict:
    """Queue the slow job over HTTP; its task record."""
    body = {"name": "Ada", "seconds": seconds}
    return requests.post(f"{live_server}/api/tasks/slow", json=body, timeout=5).json()


def read_events(response: requests.Response) -> list[dict]:
    """Every task record the stream sent, until the server closed it."""
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_events_arrive_in_order_and_the_stream_closes_after_success(live_server):
    task = submit_slow(live_server, seconds=3)
    with requests.get(live_server + task["links"]["events"], stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        events = read_events(response)
    states = [event["state"] for event in events]
    assert states[-1] == "SUCCESS"
    assert events[-1]["result"] == "Task completed for Ada!"
    assert "PROGRESS" in states
    steps = [event["progress"]["current"] for event in events if event["state"] == "PROGRESS"]
    assert steps == sorted(steps) and steps[-1] == 3
    assert set(states) <= {"QUEUED", "STARTED", "PROGRESS", "SUCCESS"}
    assert all(event["links"]["self"] == task["links"]["self"] for event in events)


def test_a_reconnecting_client_gets_the_current_state_at_once(live_server):
    task = submit_slow(live_server, seconds=0)
    url = live_server + task["links"]["events"]
    with requests.get(url, stream=True, timeout=30) as first:
        read_events(first)
    with requests.get(url, stream=True, timeout=30) as again:
        events = read_events(again)
    assert [event["state"] for event in events] == ["SUCCESS"]


def test_every_event_carries_data_and_the_reconnect_delay(live_server):
    task = submit_slow(live_server, seconds=1)
    with requests.get(live_server + task["links"]["events"], stream=True, timeout=30) as r:
        blocks = r.text.split("\n\n")
    events = [block for block in blocks if block and not block.startswith(":")]
    assert events, blocks
    for event in events:
        fields = [line.partition(": ")[0] for line in event.splitlines()]
        assert fields == ["retry", "id", "data"], event


def test_a_client_reconnecting_to_a_finished_task_is_told_to_stop(live_server):
    task = submit_slow(live_server, seconds=0)
    url = live_server + task["links"]["events"]
    with requests.get(url, stream=True, timeout=30) as first:
        last_id = [line for line in first.iter_lines(decode_unicode=True) if line.startswith("id:")]
    again = requests.get(url, headers={"Last-Event-ID": last_id[-1][4:]}, timeout=5)
    assert again.status_code == 204  # the SSE spec's "do not reconnect"


def test_events_of_an_unknown_task_are_a_json_404(live_server):
    response = requests.get(
        f"{live_server}/api/tasks/00000000-0000-4000-8000-000000000000/events", timeout=5
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_an_idle_stream_sends_heartbeats(app, live_server):
    app.config["EVENTS_HEARTBEAT_SECONDS"] = 0.2
    try:
        task = submit_slow(live_server, seconds=2)
        with requests.get(live_server + task["links"]["events"], stream=True, timeout=30) as r:
            lines = list(r.iter_lines(decode_unicode=True))
    finally:
        app.config["EVENTS_HEARTBEAT_SECONDS"] = 15.0
    assert ": heartbeat" in lines


def test_the_feed_announces_new_tasks_and_follows_them_to_the_end(live_server):
    with requests.get(f"{live_server}/api/tasks/events", stream=True, timeout=30) as feed:
        assert feed.headers["Content-Type"].startswith("text/event-stream")
        lines = feed.iter_lines(decode_unicode=True)
        assert next(lines) == ": connected"  # a comment, sent once the feed listens
        task = submit_slow(live_server, seconds=1)
        states = []
        for line in lines:
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                if event["id"] == task["id"]:
                    states.append(event["state"])
                    if event["state"] == "SUCCESS":
                        break
    assert states[0] in {"QUEUED", "STARTED", "PROGRESS"}
    assert states[-1] == "SUCCESS"
    assert "PROGRESS" in states


def subscribers(redis) -> int:
    """Connections subscribed to a channel or a pattern."""
    return sum(1 for c in redis.client_list() if int(c["sub"]) or int(c["psub"]))


def test_streams_share_one_subscription_per_process(app):
    redis = app.extensions["redis"]
    with serving(app) as base_url:
        task = submit_slow(base_url, seconds=2)
        requests.get(f"{base_url}/api/tasks/events", stream=True, timeout=30).close()  # warm up
        before = subscribers(redis)
        streams = [
            requests.get(f"{base_url}/api/tasks/{task['id']}/events", stream=True, timeout=30)
            for _ in range(20)
        ]
        opened = subscribers(redis)
        finals = []
        for stream in streams:
            for line in stream.iter_lines(decode_unicode=True):
                if '"state":"SUCCESS"' in line:
                    finals.append(line)
                    break
            stream.close()
    assert len(finals) == 20  # every stream got the final update
    assert opened == before  # the process's one subscription, not one per stream


def test_streams_let_go_as_soon_as_their_clients_hang_up(app, monkeypatch):
    """Sixty closed tabs free their streams (the server closes its side of each socket)
    within seconds, though nothing is written to an idle feed and no heartbeat comes for
    300 s.

    Fails with the client check off (``hangup_check`` answering False): the sockets stay
    in CLOSE_WAIT until the next heartbeat.
    """
    monkeypatch.setitem(app.config, "EVENTS_HEARTBEAT_SECONDS", 300.0)
    with serving(app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        serving_threads = threading.active_count()
        tabs = [open_stream(base_url, "/api/tasks/events") for _ in range(60)]
        assert threading.active_count() >= serving_threads + 60  # a stream a tab
        # Sixty open pages leave the service answering (each used to hold two connections).
        assert requests.get(f"{base_url}/api/tasks", timeout=5).status_code == 200
        for tab in tabs:
            tab.close()
        wait_until(lambda: streams_held([os.getpid()], port) == 0, timeout=20)
        wait_until(lambda: threading.active_count() <= serving_threads + 1, timeout=20)
