"""Figures 9 and 10: the video job's frames per second through one worker against PyAV
alone on the same file, and a web process's memory while a large video is uploaded."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import requests

from bench.harness import OURS_APP, celery_worker, gunicorn, median, rss_of_workers
from devservers.sample_video import make_video, padded_video
from my_app.jobs.video import PREVIEW_OPTIONS, make_video_outputs, preview_size

PREVIEW_HEIGHT = 360


def pyav_alone(clip: Path, output: Path) -> float:
    """Frames per second of the same transcode, written plainly with PyAV: decode with
    threads, scale to the preview's size, encode H.264 with the job's options."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(clip)) as source, av.open(str(output), "w") as target:
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        rate = Fraction(stream.average_rate)
        width, height = preview_size(stream.codec_context.width, stream.codec_context.height,
                                     PREVIEW_HEIGHT)  # fmt: skip
        encoder = target.add_stream("libx264", rate=rate)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.options = PREVIEW_OPTIONS["mp4"]
        encoder.codec_context.time_base = 1 / rate
        for frame in source.decode(stream):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = frames, encoder.codec_context.time_base
            target.mux(encoder.encode(scaled))
            frames += 1
        target.mux(encoder.encode(None))
    return frames / (time.perf_counter() - started)


def job_code_alone(clip: Path, folder: Path) -> float:
    """Frames per second of the job's own one pass (preview, poster, contact sheet), run
    in this process without a worker: what the job's code costs, apart from Celery."""
    started = time.perf_counter()
    made = make_video_outputs(
        str(clip), str(folder), preview_height=PREVIEW_HEIGHT, preview_format="mp4",
        contact_frames=12, on_frame=lambda done, total: None,
    )  # fmt: skip
    return made.frames_decoded / (time.perf_counter() - started)


def through_the_worker(base: str, clip: Path) -> float:
    """Frames per second of a video job, from its recorded start to its end."""
    with open(clip, "rb") as stream:
        answer = requests.post(
            f"{base}/api/tasks/video",
            files={"file": (clip.name, stream)},
            data={"preview_height": str(PREVIEW_HEIGHT), "preview_format": "mp4"},
            timeout=120,
        )
    answer.raise_for_status()
    url = f"{base}/api/tasks/{answer.json()['id']}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        task = requests.get(url, timeout=10).json()
        if task["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
            break
        time.sleep(1)  # the figure is the job's own start to end; polling only steals CPU
    assert task["state"] == "SUCCESS", task
    seconds = (
        datetime.fromisoformat(task["finished_at"]) - datetime.fromisoformat(task["started_at"])
    ).total_seconds()
    return task["result"]["frames_decoded"] / seconds


def video_throughput(report: Any, redis_url: str, profile: dict) -> None:
    """Figure 9: a 720p clip transcoded to a 360p H.264 preview (with its poster and
    contact sheet) by one worker, against the same transcode in plain PyAV, alternately."""
    url = f"{redis_url}/1"
    with tempfile.TemporaryDirectory(prefix="bench-video-") as scratch:
        folder = Path(scratch)
        clip = make_video(folder / "clip.mp4", seconds=profile["video_seconds"],
                          width=1280, height=720, fps=30)  # fmt: skip
        store = {"ARTIFACT_STORE": str(folder / "store")}
        ours, alone, code = [], [], []
        with (
            celery_worker("celery_worker", url, "heavy", **store),
            gunicorn(OURS_APP, url, **store) as (base, _),
        ):
            for round_number in range(profile["video_rounds"]):
                if round_number % 2:
                    ours.append(through_the_worker(base, clip))
                    alone.append(pyav_alone(clip, folder / "alone.mp4"))
                else:
                    alone.append(pyav_alone(clip, folder / "alone.mp4"))
                    ours.append(through_the_worker(base, clip))
                code.append(job_code_alone(clip, folder))
    report.add(
        f"Video: {profile['video_seconds']} s of 720p30 to a 360p preview", "frames/s",
        ours, alone, ">= 0.9x PyAV alone", median(ours) >= 0.9 * median(alone),
    )  # fmt: skip
    report.add("Video: the job's one pass in-process, no worker", "frames/s", code, alone,
               "reported (how much is the job's code)", None)  # fmt: skip


def upload_memory(report: Any, redis_url: str, profile: dict) -> None:
    """Figure 10: the web workers' resident memory, sampled every 20 ms, while a video of
    ``upload_mb`` MiB is uploaded, probed and stored; the growth of its peak."""
    url = f"{redis_url}/1"
    megabytes = profile["upload_mb"]
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as scratch:
        folder = Path(scratch)
        video = padded_video(folder / "large.mp4", megabytes)
        env = {"ARTIFACT_STORE": str(folder / "store"),
               "FLASK_MAX_VIDEO_UPLOAD_BYTES": str(2 * megabytes * 2**20)}  # fmt: skip
        with gunicorn(OURS_APP, url, **env) as (base, master):
            requests.get(f"{base}/api/tasks", timeout=10)  # load what a request loads
            baseline = rss_of_workers(master)
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.02):
                    peak = max(peak, rss_of_workers(master))

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                with open(video, "rb") as stream:
                    files = {"file": ("large.mp4", stream)}
                    answer = requests.post(f"{base}/api/tasks/video", files=files, timeout=600)
            finally:
                done.set()
                sampler.join()
            answer.raise_for_status()
    growth = (peak - baseline) / 2**20
    report.add(f"Web RSS growth during a {megabytes} MiB upload", "MiB", [growth], None,
               "<= 32 MiB (flat)", growth <= 32)  # fmt: skip
