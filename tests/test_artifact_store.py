"""The artifact store: a directory, or an S3-compatible bucket (moto's S3 server, an
emulator: no real S3-compatible server installs here), shared by web and worker
processes; files expire with their task, go when it is purged, and uploads stream."""

from __future__ import annotations

import io
import os
import threading
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image
from support import (
    ARTIFACT_DIR,
    purge_queues,
    scaled,
    wait_for_state,
    wait_until,
    web_process,
    worker_process,
)

from devservers.embedded_redis import free_port
from devservers.sample_video import make_video, padded_video
from my_app import create_app, lifecycle
from my_app.records import ARTIFACT_FIELD_PREFIX
from my_app.store.artifacts import artifact_store
from my_app.store.ledger import ledger_of

pytestmark = pytest.mark.timeout(180)


def png(width: int = 96, height: int = 64) -> bytes:
    """A small PNG image."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def submit_thumbnails(client) -> dict:
    """Queue thumbnails of a PNG; the 202's body."""
    data = {"file": (io.BytesIO(png()), "photo.png"), "sizes": "32"}
    response = client.post("/api/tasks/thumbnail", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_a_task_and_its_upload_lose_their_files_when_they_expire(redis_database):
    """Fails without the workers' sweep (ArtifactSweep): the files stay after the task
    expired. RESULT_EXPIRES is 3 s here, the sweep every 0.5 s."""
    url = redis_database()
    expiring = {"FLASK_RESULT_EXPIRES": "3", "FLASK_ARTIFACT_SWEEP_SECONDS": "0.5"}
    app = create_app("testing", REDIS_URL=url, RESULT_EXPIRES=3)
    client = app.test_client()
    with worker_process(url, "--pool=threads", "-Q", "default,heavy", env=expiring):
        # The upload expires 3 s after it is sent: send it once the worker is up.
        ready = client.post("/api/tasks/slow", json={"name": "ready", "seconds": 0})
        wait_for_state(client, ready.get_json()["links"]["self"], {"SUCCESS"}, timeout=60)
        task = submit_thumbnails(client)
        done = wait_for_state(client, task["links"]["self"], {"SUCCESS", "FAILURE"})
        assert done["state"] == "SUCCESS", done["error"]
        folder = Path(ARTIFACT_DIR, "tasks", task["id"])
        upload = Path(ARTIFACT_DIR, "uploads", task["inputs"]["upload_id"])
        assert (folder / "thumb-32.png").is_file() and upload.is_file()
        wait_until(lambda: not folder.exists() and not upload.exists(), timeout=20)


def test_purging_a_finished_task_deletes_its_record_and_files(client):
    """Fails without the purge (404 for the route), or when it leaves the files (seen
    failing with the store's delete removed)."""
    task = submit_thumbnails(client)
    url = task["links"]["self"]
    done = wait_for_state(client, url, {"SUCCESS"})
    artifact = done["links"]["artifacts"]["thumb-32.png"]
    assert client.get(artifact).status_code == 200
    folder = Path(ARTIFACT_DIR, "tasks", task["id"])
    assert folder.is_dir()
    assert client.post(f"{url}/purge").status_code == 204
    assert not folder.exists()
    assert client.get(url).status_code == 404
    assert client.get(artifact).status_code == 404
    listed = client.get("/api/tasks?page_size=100").get_json()
    assert task["id"] not in {item["id"] for item in listed}


def test_a_discarded_run_leaves_no_empty_folder_but_keeps_earlier_files(redis_database):
    """What a failed or cancelled run saved goes, and its task's folder with it once
    empty (a video cancelled while storing its files left ``tasks/<id>/``). Fails with
    ``remove_empty_folder`` left out of ``lifecycle.artifacts_discarded``."""
    app = create_app("testing", REDIS_URL=redis_database())
    with app.app_context():
        ledger, store = ledger_of(app), artifact_store(app)
        kept, discarded = str(uuid.uuid4()), str(uuid.uuid4())
        lifecycle.artifact_saved(ledger, store, kept, "first.txt", io.BytesIO(b"earlier run"))
        for task_id in (kept, discarded):
            lifecycle.artifact_saved(ledger, store, task_id, "late.txt", io.BytesIO(b"this run"))
            lifecycle.artifacts_discarded(ledger, store, task_id, ["late.txt"])
        assert not Path(ARTIFACT_DIR, "tasks", discarded).exists()
        assert sorted(os.listdir(Path(ARTIFACT_DIR, "tasks", kept))) == ["first.txt"]
        listed = {
            field for field in ledger.read_entry(kept) if field.startswith(ARTIFACT_FIELD_PREFIX)
        }
        assert listed == {f"{ARTIFACT_FIELD_PREFIX}first.txt"}
        store.delete(f"tasks/{kept}")


def test_purging_an_unfinished_task_is_409(idle_app):
    """Fails when purge forgets a task that is still queued (204)."""
    client = idle_app.test_client()
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 1}).get_json()
    response = client.post(f"{task['links']['self']}/purge")
    assert response.status_code == 409
    assert "QUEUED" in response.get_json()["message"]


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch):
    """moto's S3 server on 127.0.0.1, with a bucket; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    credentials = {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    requests.put(f"{endpoint}/jobs-artifacts", timeout=10).raise_for_status()
    try:
        yield endpoint
    finally:
        server.stop()


def test_an_s3_store_serves_workers_and_web_on_other_processes(redis_database, s3_server, tmp_path):
    """A prefork worker (a forked s3fs client) and the web share a bucket: the video's
    files land there, download in ranges, and go when the task is purged. Fails when the
    store writes to the local directory (nothing in the bucket), or when a forked
    worker reuses its parent's s3fs client (the job fails)."""
    import s3fs

    url = redis_database()
    store = "s3://jobs-artifacts/artifacts"
    env = {"ARTIFACT_STORE": store, "FLASK_ARTIFACT_STORE_OPTIONS__endpoint_url": s3_server}
    app = create_app(
        "testing", REDIS_URL=url, ARTIFACT_STORE=store,
        ARTIFACT_STORE_OPTIONS={"endpoint_url": s3_server},
    )  # fmt: skip
    client = app.test_client()
    bucket = s3fs.S3FileSystem(endpoint_url=s3_server, skip_instance_cache=True)
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    with worker_process(url, "--pool=prefork", "--concurrency=1", "-Q", "heavy", env=env):
        with open(clip, "rb") as stream:
            data = {"file": (stream, "clip.mp4"), "preview_height": "120"}
            response = client.post(
                "/api/tasks/video", data=data, content_type="multipart/form-data"
            )
        assert response.status_code == 202, response.get_json()
        task = response.get_json()
        done = wait_for_state(client, task["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
        assert done["state"] == "SUCCESS", done["error"]
    stored = bucket.ls(f"jobs-artifacts/artifacts/tasks/{task['id']}", refresh=True)
    assert sorted(os.path.basename(path) for path in stored) == [
        "contact-sheet.jpg", "poster.jpg", "preview.mp4",
    ]  # fmt: skip
    assert bucket.exists(f"jobs-artifacts/artifacts/uploads/{task['inputs']['upload_id']}")
    assert not Path(ARTIFACT_DIR, "tasks", task["id"]).exists()
    preview = done["result"]["preview"]
    whole = client.get(preview)
    part = client.get(preview, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.data == whole.data[10:30]
    assert client.get(preview, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    assert client.post(f"{task['links']['self']}/purge").status_code == 204
    bucket.invalidate_cache()
    assert not bucket.exists(f"jobs-artifacts/artifacts/tasks/{task['id']}/preview.mp4")
    assert client.get(preview).status_code == 404


def test_a_large_upload_streams_through_the_web_process(redis_database, tmp_path):
    """The web server's memory stays flat while a large video is uploaded and stored.
    Fails when the upload is read whole (``upload.stream.read()``: RSS grows by its
    size)."""
    megabytes = scaled(300, minimum=80)
    video = padded_video(tmp_path / "large.mp4", megabytes)
    url = redis_database()
    with web_process(url) as web:
        server = psutil.Process(
            next(
                connection.pid
                for connection in psutil.net_connections("tcp")
                if connection.laddr.port == int(web.rsplit(":", 1)[1]) and connection.pid
            )
        )
        baseline = server.memory_info().rss
        peak = baseline
        uploading = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not uploading.wait(0.02):
                peak = max(peak, server.memory_info().rss)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with open(video, "rb") as stream:
                response = requests.post(
                    f"{web}/api/tasks/video", files={"file": ("large.mp4", stream)}, timeout=120
                )
        finally:
            uploading.set()
            watcher.join()
        assert response.status_code == 202, response.text
        upload = Path(ARTIFACT_DIR, "uploads", response.json()["inputs"]["upload_id"])
        assert upload.stat().st_size == video.stat().st_size
    purge_queues(create_app("testing", REDIS_URL=url))
    growth = (peak - baseline) / 2**20
    assert growth < 40, f"the web process grew by {growth:.0f} MiB for a {megabytes} MiB upload"
