"""The video job: a real upload over the API, PyAV in a real worker, the artifact store,
and downloads a browser's <video> can seek in. Every video is made with PyAV here."""

from __future__ import annotations

import glob
import io
import os
import tempfile
from pathlib import Path

import av
import pytest
from PIL import Image
from support import ARTIFACT_DIR, wait_for_state, wait_until

from devservers.sample_video import make_video
from my_app import create_app

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short clips in three codecs and containers (one with sound)."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "h264.mp4": make_video(folder / "h264.mp4", seconds=2, audio=True),
        "vp9.webm": make_video(folder / "vp9.webm", seconds=2, codec="libvpx-vp9"),
        "mpeg4.mkv": make_video(folder / "mpeg4.mkv", seconds=2, codec="mpeg4"),
    }


def submit_video(client, path: Path, **fields) -> object:
    """POST a video file as the README's curl does (multipart, field ``file``)."""
    data = {key: str(value) for key, value in fields.items()}
    with open(path, "rb") as stream:
        data["file"] = (stream, path.name)
        return client.post("/api/tasks/video", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("clip", "preview_format", "codec"),
    [("h264.mp4", "mp4", "h264"), ("vp9.webm", "webm", "vp9"), ("mpeg4.mkv", "mp4", "h264")],
)
def test_a_video_job_makes_a_poster_a_contact_sheet_and_a_preview(
    client, clips, clip, preview_format, codec
):
    """Fails without the job, or when any of its outputs is not what was asked (seen
    failing with the preview's scaling removed: 240 px high, not 180)."""
    response = submit_video(
        client, clips[clip], preview_height=180, preview_format=preview_format, contact_frames=4
    )
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["kind"] == "video" and task["queue"] == "heavy"
    assert task["inputs"]["filename"] == clip
    done = wait_for_state(client, task["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
    assert done["state"] == "SUCCESS", done["error"]
    result = done["result"]
    metadata = result["metadata"]
    assert (metadata["width"], metadata["height"]) == (320, 240)
    assert metadata["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert metadata["frame_rate"] == pytest.approx(25.0)
    assert result["frames_decoded"] == 50
    assert done["progress"]["current"] == done["progress"]["total"] == 50
    assert metadata["audio_codec"] == ("aac" if clip == "h264.mp4" else None)
    assert set(done["links"]["artifacts"]) == {
        "poster.jpg",
        "contact-sheet.jpg",
        f"preview.{preview_format}",
    }

    poster = Image.open(io.BytesIO(client.get(result["poster"]).data))
    assert poster.format == "JPEG" and poster.size == (320, 240)
    sheet = Image.open(io.BytesIO(client.get(result["contact_sheet"]).data))
    assert sheet.size == (2 * (240 + 4) + 4, 2 * (180 + 4) + 4)  # 2x2 tiles of 240x180
    preview = client.get(result["preview"])
    assert preview.mimetype == f"video/{preview_format}"
    with av.open(io.BytesIO(preview.data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        assert (stream.codec_context.width, stream.codec_context.height) == (240, 180)
        assert sum(1 for _ in container.decode(stream)) == 50


def portrait_phone_clip(path: Path) -> Path:
    """What a phone records held upright: 160x96 landscape frames, a white mark at their
    top left, and a display matrix saying "turn me 90 degrees clockwise" (-90)."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.set_display_rotation(-90)
        for index in range(25):
            picture = Image.new("RGB", (160, 96), "black")
            picture.paste("white", (0, 0, 24, 24))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def test_a_phone_s_portrait_video_comes_out_upright(client, tmp_path):
    """The preview, poster and metadata are of the video as a player shows it: turned
    clockwise, the mark is at the top right of a portrait picture. Fails without
    ``upright_frames`` (a landscape preview and poster, the mark at the top left)."""
    clip = portrait_phone_clip(tmp_path / "phone.mp4")
    task = submit_video(client, clip, preview_height=160, contact_frames=1).get_json()
    done = wait_for_state(client, task["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
    assert done["state"] == "SUCCESS", done["error"]
    result = done["result"]
    assert (result["metadata"]["width"], result["metadata"]["height"]) == (96, 160)
    poster = Image.open(io.BytesIO(client.get(result["poster"]).data)).convert("L")
    assert poster.size == (96, 160)
    marked = {
        corner: poster.getpixel(point) > 128
        for corner, point in {
            "top left": (4, 4),
            "top right": (91, 4),
            "bottom left": (4, 155),
        }.items()
    }
    assert marked == {"top left": False, "top right": True, "bottom left": False}
    with av.open(io.BytesIO(client.get(result["preview"]).data)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (96, 160, 0)


def test_downloads_answer_ranges_and_etags_so_a_video_can_seek(client, clips):
    """Fails without make_conditional's ranges (200 and the whole file instead of 206),
    or without the ETag (no 304), or when the app sends a Date of its own beside the
    server's (seen failing without ``leave_the_date_to_the_server``)."""
    task = submit_video(client, clips["h264.mp4"], preview_height=144).get_json()
    done = wait_for_state(client, task["links"]["self"], {"SUCCESS"}, timeout=60)
    url = done["result"]["preview"]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    size = len(whole.data)
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert part.data == whole.data[100:200]
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == whole.data[-10:]
    assert client.get(url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416
    etag = whole.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert "private" in whole.headers["Cache-Control"]
    assert "Date" not in whole.headers and "Date" not in part.headers  # the server adds one


@pytest.fixture(scope="module")
def bad_uploads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Uploads that are not videos, or are videos no worker could use."""
    folder = tmp_path_factory.mktemp("bad")
    good = make_video(folder / "good.mp4", seconds=2).read_bytes()
    image = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(image, "PNG")
    return {
        "noise": os.urandom(40_000),
        "text": b"just some text, not a video\n" * 100,
        "image": image.getvalue(),
        "truncated": good[: len(good) // 2],
        # A header that reads, frames the decoder finds damaged.
        "corrupt": good[:2000] + bytes(len(good) - 4000) + good[-2000:],
    }


@pytest.mark.parametrize("kind", ["noise", "text", "image", "truncated", "corrupt"])
def test_what_is_not_a_usable_video_is_a_422_with_the_reason(client, bad_uploads, kind):
    """Fails when the probe is skipped: a 202, and a job that fails later. (For
    "corrupt", the decode near the end refuses it even without err_detect=explode.)"""
    data = {"file": (io.BytesIO(bad_uploads[kind]), f"{kind}.mp4")}
    response = client.post("/api/tasks/video", data=data, content_type="multipart/form-data")
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["errors"]["multipart"]["file"] == [body["message"]]
    assert body["message"]


def test_budgets_and_the_size_limit_refuse_before_anything_is_stored(app, tmp_path):
    """Fails without each check: the duration and pixel budgets (422) and the size limit
    (413), all answered before a byte reaches the store."""
    strict = create_app(
        "testing", REDIS_URL=app.config["REDIS_URL"], MAX_VIDEO_SECONDS=1.5,
        MAX_VIDEO_PIXELS=320 * 200, MAX_VIDEO_UPLOAD_BYTES=60_000,
    )  # fmt: skip
    client = strict.test_client()
    before = sorted(glob.glob(f"{ARTIFACT_DIR}/uploads/*"))
    long = make_video(tmp_path / "long.mp4", seconds=2, width=240, height=160)
    response = submit_video(client, long)
    assert response.status_code == 422
    assert "longer than the 1.5 s allowed" in response.get_json()["message"]
    wide = make_video(tmp_path / "wide.mp4", seconds=1, width=320, height=240)
    response = submit_video(client, wide)
    assert response.status_code == 422
    assert "more than the 64000 pixels" in response.get_json()["message"]
    big = tmp_path / "big.mp4"
    big.write_bytes(make_video(tmp_path / "ok.mp4", seconds=1, width=240, height=160).read_bytes()
                    + b"\0" * 70_000)  # fmt: skip
    response = submit_video(client, big)
    assert response.status_code == 413
    assert response.is_json
    assert sorted(glob.glob(f"{ARTIFACT_DIR}/uploads/*")) == before


def test_a_video_larger_than_any_other_body_is_accepted(client, tmp_path):
    """Fails when the video endpoint keeps MAX_CONTENT_LENGTH (16 MiB): 413. The clip is
    padded with an MP4 ``free`` box, which every reader skips."""
    clip = make_video(tmp_path / "padded.mp4", seconds=1, width=160, height=120).read_bytes()
    padding = 20 * 1024 * 1024
    padded = tmp_path / "padded-20m.mp4"
    padded.write_bytes(clip + (padding + 8).to_bytes(4, "big") + b"free" + bytes(padding))
    response = submit_video(client, padded, preview_height=144)
    assert response.status_code == 202, response.get_json()
    done = wait_for_state(client, response.get_json()["links"]["self"], {"SUCCESS"}, timeout=60)
    assert done["result"]["frames_decoded"] == 25


def test_cancel_mid_transcode_stops_it_and_leaves_nothing_behind(client, tmp_path):
    """Fails without the cancel check in the frame loop (the job runs to SUCCESS), or
    when a cancelled job leaves files: in the store, or its scratch folder. Its record
    keeps the frames it got to, without an ETA (seen failing with ``with_percent``
    keeping ``eta_seconds``)."""
    clip = make_video(tmp_path / "long.mp4", seconds=60, width=640, height=360, fps=30)
    task = submit_video(client, clip, preview_height=360, preview_format="webm").get_json()
    url = task["links"]["self"]

    def transcoding() -> dict | None:
        body = client.get(url).get_json()
        progress = body.get("progress") or {}
        return body if progress.get("current", 0) >= 60 else None

    running = wait_until(transcoding, timeout=60, interval=0.05)
    assert running["state"] == "PROGRESS"
    assert running["progress"]["message"].startswith("frame ")
    assert running["progress"]["eta_seconds"] > 0
    assert client.delete(url).status_code == 202
    stopped = wait_for_state(client, url, {"REVOKED", "SUCCESS"}, timeout=30)
    assert stopped["state"] == "REVOKED"
    assert stopped["progress"]["current"] >= 60 and "eta_seconds" not in stopped["progress"]
    assert "artifacts" not in stopped["links"]
    assert not os.path.exists(f"{ARTIFACT_DIR}/tasks/{task['id']}")
    # Celery's revoke broadcast may store REVOKED while the job unwinds: give it a moment.
    scratch = os.path.join(tempfile.gettempdir(), "video-*", "preview.webm")
    wait_until(lambda: not glob.glob(scratch), timeout=10)


def test_a_video_past_its_kind_s_time_limit_fails_and_leaves_nothing(redis_database, tmp_path):
    """TASK_TIME_LIMITS for video (a 1 s soft limit here, which the message carries from
    its producer) ends the job FAILURE with "time limit exceeded" and no files. Fails
    without the video kind's limit (the job succeeds after several seconds)."""
    from support import worker_process

    url = redis_database()
    limits = {"video": {"soft": 1, "hard": 30}}
    client = create_app("testing", REDIS_URL=url, TASK_TIME_LIMITS=limits).test_client()
    clip = make_video(tmp_path / "long.mp4", seconds=40, width=640, height=360, fps=30)
    with worker_process(url, "--pool=prefork", "--concurrency=1", "-Q", "heavy"):
        task = submit_video(client, clip, preview_height=360).get_json()
        done = wait_for_state(client, task["links"]["self"], {"SUCCESS", "FAILURE"}, timeout=60)
    assert done["state"] == "FAILURE"
    assert done["error"] == {"type": "JobTimeLimitExceeded", "message": "time limit exceeded"}
    assert "artifacts" not in done["links"]
    assert not os.path.exists(f"{ARTIFACT_DIR}/tasks/{task['id']}")
