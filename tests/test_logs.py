"""JSON logs from the web server and the worker, and one request id followed from the
HTTP request that queued a job through every line its worker logs."""

from __future__ import annotations

import json

import requests
from support import wait_until, web_process, worker_process


def json_lines(path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_one_request_id_follows_a_job_from_the_request_through_the_worker(redis_process, tmp_path):
    url = f"{redis_process.url}/0"
    env = {"LOG_FORMAT": "json"}
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with web_log.open("w") as web_output, worker_log.open("w") as worker_output:
        with (
            web_process(url, env=env, output=web_output) as web,
            worker_process(
                url, "--loglevel=INFO", "--concurrency=1", env=env, output=worker_output
            ),
        ):
            response = requests.post(
                f"{web}/api/tasks/slow", json={"name": "Ada", "seconds": 1},
                headers={"X-Request-ID": "req-7f3a"}, timeout=10,
            )  # fmt: skip
            assert response.headers["X-Request-ID"] == "req-7f3a"
            task_id = response.json()["id"]
            wait_until(
                lambda: (
                    requests.get(f"{web}/api/tasks/{task_id}", timeout=5).json()["state"]
                    == "SUCCESS"
                )
            )
            # A request without one gets a new id.
            assert len(requests.get(f"{web}/healthz", timeout=5).headers["X-Request-ID"]) == 32
            wait_until(lambda: any(
                line.get("task_id") == task_id and "succeeded" in line["message"]
                for line in json_lines(worker_log)
            ), timeout=20)  # fmt: skip

    web_lines = json_lines(web_log)
    queued = [line for line in web_lines if line.get("task_id") == task_id]
    assert queued and queued[0]["request_id"] == "req-7f3a"
    access = [line for line in web_lines if line.get("path") == "/api/tasks/slow"]
    assert access[0]["status"] == 202 and access[0]["request_id"] == "req-7f3a"
    worker_lines = [line for line in json_lines(worker_log) if line.get("task_id") == task_id]
    assert worker_lines, "the worker logged nothing for the task"
    assert {line["request_id"] for line in worker_lines} == {"req-7f3a"}
    assert all({"asctime", "level", "name", "message"} <= set(line) for line in worker_lines)
