"""A client on a machine of its own (tests/test_scale_out.py runs it in a network
namespace): it waits until the web server at argv[1] is ready with argv[2] workers online,
queues a job, follows its live events to the end, and prints what it saw as one JSON
object."""

from __future__ import annotations

import json
import sys
import time

import requests


def main(web: str, workers: int) -> None:
    deadline = time.monotonic() + 90
    while True:  # ready: Redis, the broker, a worker on each queue, and all the workers
        try:
            ready = requests.get(f"{web}/readyz", timeout=5)
            online = ready.json()["checks"]["consumers"]["workers"] if ready.ok else []
            if len(online) >= workers:
                break
        except (requests.RequestException, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{web} never became ready")
        time.sleep(0.5)
    job = {"name": "from afar", "seconds": 3}
    task = requests.post(f"{web}/api/tasks/slow", json=job, timeout=10).json()
    events = []
    with requests.get(f"{web}{task['links']['events']}", stream=True, timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    final = requests.get(f"{web}{task['links']['self']}", timeout=10).json()
    print(json.dumps({"ready": ready.json(), "events": events, "final": final}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
