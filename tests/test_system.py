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


def test_a_non_admin_sees_only_its_own_running_tasks(keyed_app):
    """Fails when /api/system lists every running task id to every caller: bob saw
    alice's task ids."""
    from support import ADMIN, ALICE, BOB

    client = keyed_app.test_client()
    task = client.post(
        "/api/tasks/slow", json={"name": "Ada", "seconds": 60}, headers=ALICE
    ).get_json()
    try:

        def running_for(headers):
            system = client.get("/api/system", headers=headers).get_json()
            return {task_id for worker in system["workers"] for task_id in worker["running"]}

        wait_until(lambda: task["id"] in running_for(ADMIN), timeout=20, interval=0.5)
        assert task["id"] in running_for(ALICE)
        assert task["id"] not in running_for(BOB)
    finally:
        client.delete(task["links"]["self"], headers=ALICE)
