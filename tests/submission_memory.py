"""Run by tests/test_submission.py in a process of its own: submit jobs through the app
and print, as JSON, how much live Python memory the submissions kept (tracemalloc) and
the last task ids. A fresh process, so what other tests left behind (a tracer provider,
an exporter's spans) is not counted."""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from collections import deque

from my_app import create_app


def main(redis_url: str, warm_up: int, measured: int) -> None:
    """Submit ``warm_up`` jobs, then measure ``measured`` more."""
    app = create_app("testing", REDIS_URL=redis_url)
    client = app.test_client()
    kept: deque[str] = deque(maxlen=500)  # 3,000 ids would be 250 KB of their own

    def submit(count: int) -> None:
        for _ in range(count):
            kept.append(client.post("/run-task/Ada").get_json()["task_id"])

    submit(warm_up)  # pools, caches, interned strings
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.get_traced_memory()[0]
    submit(measured)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    print(json.dumps({"grown": grown, "task_ids": list(kept)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
