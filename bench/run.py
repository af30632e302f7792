"""``make bench``: this service against the baseline app of Flask's docs, in one run.

Both apps run on the same private Redis and the same gunicorn settings, are loaded by
the same client, alternately (A B A B); medians are printed with min-max, the ratio
ours/baseline and the target, and written to bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from bench.costs import CostMeter
from bench.harness import (
    BASELINE_APP,
    OURS_APP,
    celery_worker,
    gunicorn,
    load,
    median,
    percentile,
    private_redis,
    python_load,
    rss_of_workers,
)
from bench.streams import StreamClients
from bench.video import upload_memory, video_throughput
from my_app.config import Config

RESULTS = Path(__file__).with_name("results.json")
SLOW_BODY = '{"name": "bench", "seconds": 0}'
PROFILES = {
    "full": {"rounds": 8, "seconds": 4, "jobs": 5000, "sequential": 200, "updates": 200,
             "memory": 50_000, "e2e_rounds": 2, "retained": 100_000, "streams": 1000,
             "video_seconds": 20, "video_rounds": 4, "upload_mb": 500},
    "quick": {"rounds": 2, "seconds": 3, "jobs": 1000, "sequential": 40, "updates": 50,
              "memory": 10_000, "e2e_rounds": 1, "retained": 10_000, "streams": 200,
              "video_seconds": 8, "video_rounds": 2, "upload_mb": 200},
}  # fmt: skip
DB = {"ours": 1, "baseline": 2}


class Report:
    """The figures of one run."""

    def __init__(self) -> None:
        self.figures: list[dict[str, Any]] = []
        self.costs: list[dict[str, Any]] = []

    def add_costs(self, operation: str, ours: CostMeter, baseline: CostMeter,
                  targets: dict[str, str]) -> None:  # fmt: skip
        """What one operation costs each app: Redis round trips, commands and CPU."""
        mine, theirs = ours.total.per_operation(), baseline.total.per_operation()
        self.costs.append({"operation": operation, "ours": mine, "baseline": theirs,
                           "targets": targets})  # fmt: skip
        print(
            f"  cost of {operation}: ours {mine['round_trips']} round trips, "
            f"{mine['commands']} commands, {mine['cpu_ms']} ms CPU; baseline "
            f"{theirs['round_trips']} round trips, {theirs['commands']} commands, "
            f"{theirs['cpu_ms']} ms CPU"
            + "".join(f"; target {name} {target}" for name, target in targets.items()),
            flush=True,
        )

    def add(self, name: str, unit: str, ours: list[float], baseline: list[float] | None,
            target: str | None, met: bool | None) -> None:  # fmt: skip
        """One figure from its rounds; the ratio is ours/baseline of the medians."""
        ours_median = median(ours)
        base_median = median(baseline) if baseline else None
        self.figures.append({
            "name": name, "unit": unit,
            "ours": round(ours_median, 3),
            "baseline": round(base_median, 3) if base_median is not None else None,
            "ratio": round(ours_median / base_median, 3) if base_median else None,
            "target": target, "met": met,
            "ours_range": [round(min(ours), 3), round(max(ours), 3)],
            "baseline_range": [round(min(baseline), 3), round(max(baseline), 3)]
            if baseline else None,
        })  # fmt: skip
        figure = self.figures[-1]
        print(
            f"{name:<46} ours {figure['ours']:>10} {unit:<8} "
            f"[{figure['ours_range'][0]}..{figure['ours_range'][1]}]  "
            f"baseline {figure['baseline'] if figure['baseline'] is not None else '—':>10}  "
            f"ratio {figure['ratio'] if figure['ratio'] is not None else '—':>6}  "
            f"target {target or '—'}  {'MET' if met else ('MISSED' if met is False else '')}",
            flush=True,
        )


def submit_throughput(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 1: POST submissions a second, p99, and the plain-route ceiling."""
    rounds: dict[str, list[dict]] = {"ours": [], "baseline": [], "plain": [], "unlimited": []}
    meters = {"ours": CostMeter(redis_url), "baseline": CostMeter(redis_url)}
    # Ours once more with the rate limit off: what Flask-Limiter's checks cost.
    unlimited = gunicorn(OURS_APP, f"{redis_url}/{DB['ours']}", FLASK_SUBMIT_RATE_LIMIT="0")
    with serving_both(redis_url) as (ours_base, baseline_base, servers), \
            unlimited as (unlimited_base, _):  # fmt: skip
        targets = {
            "ours": (f"{ours_base}/api/tasks/slow", SLOW_BODY),
            "baseline": (f"{baseline_base}/submit", SLOW_BODY),
            "plain": (f"{baseline_base}/plain", None),
            "unlimited": (f"{unlimited_base}/api/tasks/slow", SLOW_BODY),
        }
        warm_up(targets.values())
        for round_number in range(profile["rounds"]):
            for name in counterbalanced(list(targets), round_number):
                url, body = targets[name]
                if name in meters:
                    with meters[name].measure([servers[name]]) as span:
                        rounds[name].append(load(url, profile["seconds"], body))
                        span.operations = rounds[name][-1]["requests"]
                else:
                    rounds[name].append(load(url, profile["seconds"], body))
            flush(redis_url)
    ours = [r["rps"] for r in rounds["ours"]]
    baseline = [r["rps"] for r in rounds["baseline"]]
    report.add("HTTP submit throughput", "req/s", ours, baseline, ">= 0.5x baseline",
               median(ours) >= 0.5 * median(baseline))  # fmt: skip
    report.add_costs("a submission", meters["ours"], meters["baseline"],
                     {"round trips": "<= 6"})  # fmt: skip
    ours_p99 = [r["p99"] for r in rounds["ours"]]
    base_p99 = [r["p99"] for r in rounds["baseline"]]
    report.add("HTTP submit p99 latency", "ms", ours_p99, base_p99, "<= baseline",
               median(ours_p99) <= median(base_p99))  # fmt: skip
    plain = [r["rps"] for r in rounds["plain"]]
    report.add(
        "HTTP submit, fraction of the plain JSON route",
        "x",
        [o / p for o, p in zip(ours, plain, strict=True)],
        None,
        None,
        None,
    )
    report.add("HTTP submit throughput, rate limit off", "req/s",
               [r["rps"] for r in rounds["unlimited"]], baseline, None, None)  # fmt: skip


def status_reads(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 2: GET /api/tasks/<id> against AsyncResult(id).state."""
    rates: dict[str, list[float]] = {"ours": [], "baseline": []}
    meters = {"ours": CostMeter(redis_url), "baseline": CostMeter(redis_url)}
    with serving_both(redis_url) as (ours_base, baseline_base, servers):
        for round_number in range(profile["rounds"]):
            # A queued task (no worker runs here), read over and over.
            task_id = requests.post(
                f"{ours_base}/api/tasks/slow",
                data=SLOW_BODY,
                timeout=5,
                headers={"Content-Type": "application/json"},
            ).json()["id"]
            result_id = requests.post(f"{baseline_base}/submit", json={}, timeout=5).json()[
                "result_id"]  # fmt: skip
            targets = {
                "ours": f"{ours_base}/api/tasks/{task_id}",
                "baseline": f"{baseline_base}/status/{result_id}",
            }
            if round_number == 0:
                warm_up((url, None) for url in targets.values())
            for name in counterbalanced(list(targets), round_number):
                with meters[name].measure([servers[name]]) as span:
                    figures = load(targets[name], profile["seconds"])
                    span.operations = figures["requests"]
                rates[name].append(figures["rps"])
            flush(redis_url)
    ours, baseline = rates["ours"], rates["baseline"]
    report.add("Status reads", "req/s", ours, baseline, ">= 0.75x baseline",
               median(ours) >= 0.75 * median(baseline))  # fmt: skip
    report.add_costs("a status read", meters["ours"], meters["baseline"],
                     {"round trips": "1"})  # fmt: skip


@contextmanager
def serving_both(redis_url: str) -> Iterator[tuple[str, str, dict[str, psutil.Process]]]:
    """This service and the baseline, each under gunicorn on its own database.

    Both stay up for all the rounds, and only the one under load is busy, so paired rounds
    run seconds apart and share the machine's weather.
    """
    ours = gunicorn(OURS_APP, f"{redis_url}/{DB['ours']}")
    baseline = gunicorn(BASELINE_APP, f"{redis_url}/{DB['baseline']}")
    with ours as (ours_base, ours_master), baseline as (baseline_base, baseline_master):
        yield ours_base, baseline_base, {"ours": ours_master, "baseline": baseline_master}


def counterbalanced(items: list, round_number: int) -> list:
    """A B in even rounds, B A in odd ones: neither side always runs first."""
    return items if round_number % 2 == 0 else items[::-1]


def warm_up(targets: Iterable[tuple[str, str | None]]) -> None:
    """One second of load on each target first: fresh processes connect and fill caches."""
    for url, body in targets:
        load(url, 1, body)


def end_to_end(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 3: N zero-second jobs through one prefork worker (concurrency 2), queued
    with ``.delay()`` as from a shell; ours in the default configuration and with a
    monitor's task events on (TASK_EVENTS, as Flower wants them)."""
    from bench.baseline_app import create_app as create_baseline
    from my_app import create_app
    from my_app.tasks import slow_task

    rates: dict[str, list[float]] = {"ours": [], "events": [], "baseline": []}
    meters = {name: CostMeter(redis_url) for name in rates}

    def run(name: str, delay: Any, module: str, url: str, queues: str, **env: str) -> None:
        with celery_worker(module, url, queues, **env) as worker:
            with meters[name].measure([worker]) as span:
                started = time.perf_counter()
                ids = [delay().id for _ in range(profile["jobs"])]
                wait_for_success(url, ids)
                rates[name].append(profile["jobs"] / (time.perf_counter() - started))
                span.operations = profile["jobs"]
        flush(redis_url)

    for _ in range(profile["e2e_rounds"]):
        url = f"{redis_url}/{DB['ours']}"
        for name, events in (("ours", False), ("events", True)):
            app = create_app(
                "production",
                SECRET_KEY="x",
                REDIS_URL=url,
                TASK_EVENTS=events,
                ALLOW_ANONYMOUS=True,
            )
            slow = app.extensions["celery"].tasks[slow_task.name]
            run(name, lambda slow=slow: slow.delay("e2e", 0), "celery_worker", url,
                "default,heavy", TASK_EVENTS=str(events).lower())  # fmt: skip
        url = f"{redis_url}/{DB['baseline']}"
        baseline_app = create_baseline()
        baseline_app.extensions["celery"].conf.update(broker_url=url, result_backend=url)
        noop = baseline_app.extensions["celery"].tasks["bench.baseline_app.noop"]
        run("baseline", noop.delay, "bench.baseline_app", url, "celery")
    ours, events, baseline = rates["ours"], rates["events"], rates["baseline"]
    report.add(f"End to end: {profile['jobs']} jobs, 1 worker (c=2)", "jobs/s", ours, baseline,
               ">= 0.75x bare worker", median(ours) >= 0.75 * median(baseline))  # fmt: skip
    report.add("End to end, task events on (a monitor watching)", "jobs/s", events, baseline,
               ">= 0.6x bare worker", median(events) >= 0.6 * median(baseline))  # fmt: skip
    bare = meters["baseline"].total.per_operation()["round_trips"]
    report.add_costs("a job, end to end (worker CPU)", meters["ours"], meters["baseline"],
                     {"round trips": f"<= {bare + 3:.1f} (bare worker + 3)"})  # fmt: skip
    report.add_costs("a job, task events on", meters["events"], meters["baseline"], {})


def wait_for_success(url: str, ids: list[str], timeout: float = 600) -> None:
    """Until every task's stored state is SUCCESS."""
    client = redis.Redis.from_url(url)
    keys = [f"celery-task-meta-{task_id}" for task_id in ids]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [key for key, value in zip(keys, client.mget(keys), strict=True)
                   if not value or b'"SUCCESS"' not in value]  # fmt: skip
        if not pending:
            return
        keys = pending
        time.sleep(0.1)
    raise RuntimeError(f"{len(keys)} tasks did not finish")


def start_latency(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 4: from the POST leaving the client to the job starting, one at a time."""
    ours, baseline = [], []
    url = f"{redis_url}/{DB['ours']}"
    client = redis.Redis.from_url(url, decode_responses=True)
    json_headers = {"Content-Type": "application/json"}
    with gunicorn(OURS_APP, url) as (base, _), celery_worker("celery_worker", url, "default"):
        session = requests.Session()
        for _ in range(profile["sequential"]):
            sent = time.time()
            reply = session.post(f"{base}/api/tasks/slow", data=SLOW_BODY, headers=json_headers)
            key = f"jobs:task:{reply.json()['id']}"
            started = wait_for(lambda key=key: client.hget(key, "started_at"))
            ours.append((iso_seconds(started) - sent) * 1000)
    url = f"{redis_url}/{DB['baseline']}"
    client = redis.Redis.from_url(url, decode_responses=True)
    with gunicorn(BASELINE_APP, url) as (base, _), \
            celery_worker("bench.baseline_app", url, "celery"):  # fmt: skip
        session = requests.Session()
        for _ in range(profile["sequential"]):
            sent = time.time()
            task_id = session.post(f"{base}/submit", json={}, timeout=5).json()["result_id"]
            key = f"celery-task-meta-{task_id}"
            meta = wait_for(lambda key=key: client.get(key))
            baseline.append((json.loads(meta)["result"] - sent) * 1000)
    flush(redis_url)
    for pct in (50, 99):
        report.add(f"Submit -> start latency p{pct} (light load)", "ms",
                   [percentile(ours, pct)], [percentile(baseline, pct)], None, None)  # fmt: skip


def iso_seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def wait_for(read, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.0005)
    raise RuntimeError("timed out")


def live_latency(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 5: from a progress update stored in Redis to its event at an SSE client."""
    from my_app import create_app

    url = f"{redis_url}/{DB['ours']}"
    app = create_app("production", SECRET_KEY="x", REDIS_URL=url, ALLOW_ANONYMOUS=True)
    backend = app.extensions["celery"].backend
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    with gunicorn(OURS_APP, url) as (base, _):
        task = requests.post(f"{base}/api/tasks/slow", data=SLOW_BODY, timeout=5,
                             headers={"Content-Type": "application/json"}).json()  # fmt: skip
        listening = threading.Event()

        def listen() -> None:
            with requests.get(f"{base}/api/tasks/{task['id']}/events", stream=True,
                              timeout=60) as stream:  # fmt: skip
                for line in stream.iter_lines(decode_unicode=True):
                    if line.startswith("data: "):
                        listening.set()
                        event = json.loads(line[6:])
                        if event["state"] == "PROGRESS":
                            received[event["progress"]["current"]] = time.perf_counter()

        reader = threading.Thread(target=listen)
        reader.start()
        listening.wait(10)
        for step in range(1, profile["updates"] + 1):
            sent[step] = time.perf_counter()
            # What Task.update_state does in a worker.
            backend.store_result(task["id"], {"current": step, "total": profile["updates"]},
                                 "PROGRESS")  # fmt: skip
            time.sleep(0.01)
        backend.store_result(task["id"], "done", "SUCCESS")
        reader.join(30)
    flush(redis_url)
    latencies = [(received[step] - sent[step]) * 1000 for step in sent if step in received]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    report.add("Live update latency p50", "ms", [p50], None, "<= 20 ms", p50 <= 20)
    report.add("Live update latency p99", "ms", [p99], None, "<= 100 ms", p99 <= 100)
    report.add("Live updates delivered", "%", [100 * len(latencies) / len(sent)], None,
               "100 %", len(latencies) == len(sent))  # fmt: skip


def producer_memory(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 6: web workers' RSS growth over N submissions, and subscriptions left."""
    growth: dict[str, float] = {}
    channels: dict[str, int] = {}
    for name, app, path in (("ours", OURS_APP, "/api/tasks/slow"),
                            ("baseline", BASELINE_APP, "/submit")):  # fmt: skip
        url = f"{redis_url}/{DB[name]}"
        with gunicorn(app, url) as (base, master):
            load(base + path, 3, SLOW_BODY)  # warm up
            before = rss_of_workers(master)
            rate = load(base + path, 2, SLOW_BODY)["rps"]
            done = load(base + path, profile["memory"] / rate, SLOW_BODY)["requests"]
            grown = rss_of_workers(master) - before
            growth[name] = grown / 2**20 * profile["memory"] / max(done, 1)
            channels[name] = len(redis.Redis.from_url(url).pubsub_channels("celery-task-meta-*"))
        flush(redis_url)
    report.add(f"Producer RSS growth per {profile['memory']} submissions", "MiB",
               [growth["ours"]], [growth["baseline"]], "<= 1 MiB", growth["ours"] <= 1)  # fmt: skip
    report.add("Result-channel subscriptions left in Redis", "channels",
               [channels["ours"]], [channels["baseline"]], "0", channels["ours"] == 0)  # fmt: skip


def seed_failures(url: str, count: int) -> None:
    """``count`` failed tasks in the ledger and the results, written the way a worker's
    result backend writes them (so the per-state index is the real one), by a process of
    its own: the load generator's process stays as it was."""
    code = f"from bench.run import write_failures; write_failures({url!r}, {count})"
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, check=True)


def write_failures(url: str, count: int) -> None:
    """The body of ``seed_failures``."""
    from my_app import create_app, lifecycle

    app = create_app("testing", REDIS_URL=url, RESULT_EXPIRES=3600)
    client, backend = app.extensions["redis"], app.extensions["celery"].backend
    celery_app, ledger = app.extensions["celery"], app.extensions["ledger"]
    for n in range(count):
        entry = lifecycle.new_entry(
            celery_app, "my_app.tasks.slow_task", f"seeded-{n:07d}", (),
            {"name": "seed", "seconds": 0}, owner="public", queue="default",
        )  # fmt: skip
        ledger.record_queued(entry, time.time())
        backend.mark_as_failure(entry["id"], RuntimeError("seeded"))
    # Measure the steady state: not while Redis rewrites its append-only file.
    wait_for(lambda: not client.info("persistence")["aof_rewrite_in_progress"], timeout=120)


def filtered_list(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 7: GET /api/tasks?state=FAILURE with many retained tasks against 100; no
    baseline app lists tasks, so the comparison is ours with itself: two servers, one on
    a database of 100 failed tasks and one on ``retained``, loaded in alternate rounds."""
    sizes = {100: f"{redis_url}/{DB['baseline']}", profile["retained"]: f"{redis_url}/{DB['ours']}"}
    for retained, url in sizes.items():
        seed_failures(url, retained)
    rates: dict[int, list[float]] = {retained: [] for retained in sizes}
    small, large = (gunicorn(OURS_APP, url) for url in sizes.values())
    with small as (small_base, _), large as (large_base, _):
        targets = {
            retained: f"{base}/api/tasks?state=FAILURE&page_size=20"
            for retained, base in zip(sizes, (small_base, large_base), strict=True)
        }
        warm_up((target, None) for target in targets.values())
        for round_number in range(profile["rounds"]):
            for retained in counterbalanced(list(targets), round_number):
                rates[retained].append(load(targets[retained], profile["seconds"])["rps"])
    flush(redis_url)
    large_rates, small_rates = rates[profile["retained"]], rates[100]
    met = median(large_rates) >= 0.8 * median(small_rates)
    report.add(f"Filtered list, {profile['retained']} retained vs 100", "req/s", large_rates,
               small_rates, ">= 0.8x at 100", met)  # fmt: skip


#: The streaming figure's jobs: each reports progress 0..STREAM_JOB_SECONDS, one a second.
STREAM_JOBS = 10
STREAM_JOB_SECONDS = 5


def many_streams(report: Report, redis_url: str, profile: dict) -> None:
    """Figure 8: ``streams`` event streams open on one ``make serve`` (gunicorn.conf.py as
    shipped, gevent workers) while their jobs run. Status reads' p99 with the streams
    open and updates flowing, against the same server with none; whether every stream
    received every update; and how many Redis connections the web processes hold."""
    url = f"{redis_url}/{DB['ours']}"
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    body = json.dumps({"name": "streams", "seconds": STREAM_JOB_SECONDS})
    with gunicorn(OURS_APP, url, worker_class=None) as (base, master):
        # The jobs wait (no worker runs yet) while the streams open: each stream then
        # sees every update of its job.
        tasks = [requests.post(f"{base}/api/tasks/slow", data=body, timeout=5,
                               headers={"Content-Type": "application/json"}).json()
                 for _ in range(STREAM_JOBS)]  # fmt: skip
        probe = f"{base}/api/tasks/{tasks[0]['id']}"
        warm_up([(probe, None)])
        # The Python load generator, as in every earlier run of this figure: against
        # gevent workers, wrk's keep-alive connections see ~1 s stalls for ~1 % of
        # requests (p99 about 1 s on the commit before this change too), which is the
        # pairing of the two, not the streams (bench/README.md).
        quiet = python_load(probe, profile["seconds"], None, 8)
        clients = StreamClients(base, [task["links"]["events"] for task in tasks],
                                profile["streams"])  # fmt: skip
        clients.open()
        connections = [web_redis_connections(master, redis_port)]
        with celery_worker("celery_worker", url, "default,heavy"):
            busy = []
            deadline = time.monotonic() + STREAM_JOBS / 2 * STREAM_JOB_SECONDS
            while time.monotonic() < deadline:  # the jobs run two at a time
                busy.append(python_load(probe, profile["seconds"], None, 8))
                connections.append(web_redis_connections(master, redis_port))
            clients.wait_ended(timeout=120)
    flush(redis_url)
    expected = set(range(STREAM_JOB_SECONDS + 1))
    complete = [s for s in clients.streams
                if s.ended and s.progress == expected and s.states[-1] == "SUCCESS"]  # fmt: skip
    p99 = max(figure["p99"] for figure in busy)
    count = profile["streams"]
    report.add(f"Status read p99, {count} streams open", "ms", [p99], [quiet["p99"]],
               "< 100 ms", p99 < 100)  # fmt: skip
    report.add(f"Streams that received every update, of {count}", "%",
               [100 * len(complete) / count], None, "100 %", len(complete) == count)  # fmt: skip
    # Per web process: three pools of REDIS_MAX_CONNECTIONS (ledger, artifacts, results),
    # Celery's producer pool (broker_pool_limit) and the fan-out's one subscription.
    pool_limit = Config.CELERY.get("broker_pool_limit", 10)
    bound = 2 * (3 * Config.REDIS_MAX_CONNECTIONS + pool_limit + 1)
    report.add(f"Web processes' Redis connections, {count} streams", "connections",
               [max(connections)], None, f"<= {bound} (the pools' bound)",
               max(connections) <= bound)  # fmt: skip
    errors = {s.error for s in clients.streams if s.error}
    if errors:
        print(f"  stream errors: {sorted(errors)[:3]}")


def web_redis_connections(master: psutil.Process, redis_port: int) -> int:
    """The TCP connections the web server's processes hold to Redis."""
    return sum(
        1
        for process in master.children()
        for connection in process.net_connections("tcp")
        if connection.raddr and connection.raddr.port == redis_port
    )


def flush(redis_url: str) -> None:
    """Empty the benchmark databases between rounds (nothing else uses this Redis)."""
    for db in DB.values():
        redis.Redis.from_url(f"{redis_url}/{db}").flushdb()


MEASURES = (
    submit_throughput,
    status_reads,
    end_to_end,
    start_latency,
    live_latency,
    producer_memory,
    filtered_list,
    many_streams,
    video_throughput,
    upload_memory,
)


def main(argv: list[str] | None = None) -> int:
    """Run every figure and write bench/results.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~3 min)")
    parser.add_argument("--only", nargs="+", choices=[m.__name__ for m in MEASURES],
                        help="measure only these figures (while working on one)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="override the profile's rounds")
    parser.add_argument(
        "--merge", action="store_true", help="with --only: replace them in results.json"
    )
    args = parser.parse_args(argv)
    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.rounds:
        profile["rounds"] = args.rounds
    report = Report()
    started = time.monotonic()
    with private_redis() as redis_url:
        for measure in MEASURES:
            if not args.only or measure.__name__ in args.only:
                measure(report, redis_url, profile)
    machine = {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "profile": "quick" if args.quick else "full",
        "seconds": round(time.monotonic() - started),
    }
    missed = [figure["name"] for figure in report.figures if figure["met"] is False]
    if args.only and args.merge and RESULTS.exists():  # a re-measured figure, in place
        stored = json.loads(RESULTS.read_text())
        fresh = {figure["name"]: figure for figure in report.figures}
        stored["figures"] = [fresh.pop(f["name"], f) for f in stored["figures"]]
        stored["figures"] += list(fresh.values())
        stored.setdefault("remeasured", []).append(
            {"figures": [m for m in args.only], "seconds": machine["seconds"]}
        )
        RESULTS.write_text(json.dumps(stored, indent=2))
        print(f"\nmerged into {RESULTS}; targets missed: {missed or 'none'}")
        return 0
    if args.only:  # a partial run leaves the last complete results alone
        print(f"\n{machine['seconds']} s; targets missed: {missed or 'none'}")
        return 0
    RESULTS.write_text(json.dumps(
        {"machine": machine, "figures": report.figures, "costs": report.costs}, indent=2
    ))  # fmt: skip
    print(f"\nwrote {RESULTS} in {machine['seconds']} s; targets missed: {missed or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
