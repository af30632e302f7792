"""Commands sent together in one write, and scripts run through them."""

from __future__ import annotations

import gc
import threading

import pytest
import redis

from my_app.redis_io import run_script, send_together


def test_commands_sent_together_answer_in_order(idle_app):
    client = idle_app.extensions["redis"]
    client.hset("io:hash", mapping={"a": "1"})
    client.set("io:string", "two")
    try:
        replies = send_together(client, [("HGETALL", "io:hash"), ("GET", "io:string"),
                                         ("GET", "io:missing")])  # fmt: skip
        assert replies == [{"a": "1"}, "two", None]
        assert send_together(client, []) == []
    finally:
        client.delete("io:hash", "io:string")


def test_an_error_reply_is_raised_and_the_next_call_is_clean(idle_app):
    client = idle_app.extensions["redis"]
    client.set("io:string", "two")
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            send_together(client, [("HGETALL", "io:string"), ("GET", "io:string")])
        # The unread "two" was dropped with its connection: no answer arrives out of turn.
        assert send_together(client, [("GET", "io:missing")]) == [None]
    finally:
        client.delete("io:string")


def test_a_script_redis_forgot_is_loaded_again(idle_app):
    client = idle_app.extensions["redis"]
    script = client.register_script("return ARGV[1] .. KEYS[1]")
    client.script_flush()  # what a Redis restart does to the script cache
    assert run_script(client, script, keys=["!"], args=["hello"]) == "hello!"
    assert run_script(client, script, keys=["?"], args=["again"]) == "again?"


def test_submissions_survive_redis_forgetting_the_submission_script(idle_app):
    client = idle_app.test_client()
    assert client.post("/api/tasks/slow", json={"name": "Ada"}).status_code == 202
    idle_app.extensions["redis"].script_flush()
    assert client.post("/api/tasks/slow", json={"name": "Ada"}).status_code == 202
    assert idle_app.extensions["redis"].llen("default") == 2


def test_each_thread_keeps_one_connection_and_gives_it_back_when_it_ends(idle_app):
    client = idle_app.extensions["redis"]
    pool = client.connection_pool
    in_use_before = len(pool._in_use_connections)

    def read_three_times() -> None:
        for _ in range(3):
            send_together(client, [("GET", "io:missing")])

    for _ in range(20):  # a thread per request, as Werkzeug's development server runs
        thread = threading.Thread(target=read_three_times)
        thread.start()
        thread.join()
    gc.collect()
    assert len(pool._in_use_connections) == in_use_before
    assert pool._created_connections <= in_use_before + 2  # reused, not one per thread
