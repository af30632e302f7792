"""GET /api/system: queues and the workers online, from the broker and the heartbeats."""

from __future__ import annotations

from support import wait_until


def test_queues_and_workers_are_listed_with_what_they_run(client):
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 60}).get_json()
    try:

        def running_it():
            system = client.get("/api/system").get_json()
            return system if any(task["id"] in w["running"] for w in system["workers"]) else None

        system = wait_until(running_it, timeout=20, interval=0.5)  # heartbeats every 10 s
        queues = {queue["name"]: queue for queue in system["queues"]}
        assert set(queues) == {"default", "heavy"}
        worker = next(w for w in system["workers"] if task["id"] in w["running"])
        assert worker["name"] in queues["default"]["consumers"]
        assert set(worker["queues"]) == {"default", "heavy"}
        assert queues["default"]["depth"] >= 0 and queues["default"]["oldest_waiting_seconds"] >= 0
    finally:
        client.delete(task["links"]["self"])
