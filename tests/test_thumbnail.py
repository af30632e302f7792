"""Thumbnails: uploads checked before anything is queued, one artifact per size."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from support import wait_for_state

from my_app.jobs.thumbnail import (
    InvalidImage,
    UnsupportedImage,
    check_image,
    make_thumbnails,
)


def image_bytes(size=(640, 480), image_format="PNG", mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color="teal" if mode == "RGB" else 0).save(buffer, image_format)
    return buffer.getvalue()


def upload(client, data, filename="photo.png", sizes="64,128,256", image_format="png"):
    return client.post(
        "/api/tasks/thumbnail",
        data={"file": (io.BytesIO(data), filename), "sizes": sizes, "format": image_format},
        content_type="multipart/form-data",
    )


def test_check_image_accepts_the_four_formats():
    for image_format in ("JPEG", "PNG", "WEBP", "GIF"):
        assert check_image(image_bytes(image_format=image_format), 10**6)[0] == image_format


def test_check_image_refuses_what_it_should():
    with pytest.raises(UnsupportedImage):
        check_image(b"just text", 10**6)
    with pytest.raises(UnsupportedImage, match="BMP"):
        check_image(image_bytes(image_format="BMP"), 10**6)
    with pytest.raises(InvalidImage, match="corrupt"):
        check_image(image_bytes()[:200], 10**6)
    with pytest.raises(InvalidImage, match="pixels"):
        check_image(image_bytes(size=(2000, 2000)), 10**6)


def test_make_thumbnails_fits_each_size_and_keeps_the_aspect():
    made = list(make_thumbnails(image_bytes(size=(640, 480)), [64, 256], "webp"))
    assert [(t.size, t.width, t.height, t.filename) for t in made] == [
        (64, 64, 48, "thumb-64.webp"),
        (256, 256, 192, "thumb-256.webp"),
    ]
    assert Image.open(io.BytesIO(made[1].data)).format == "WEBP"


def test_the_thumbnail_job_makes_one_artifact_per_size(client):
    response = upload(client, image_bytes(size=(800, 400)))
    assert response.status_code == 202
    task = response.get_json()
    assert set(task["inputs"]) == {"upload_id", "sizes", "format"}  # no image in the message
    done = wait_for_state(client, response.headers["Location"], {"SUCCESS"})
    assert [(t["size"], t["width"], t["height"]) for t in done["result"]] == [
        (64, 64, 32),
        (128, 128, 64),
        (256, 256, 128),
    ]
    assert sorted(done["links"]["artifacts"]) == ["thumb-128.png", "thumb-256.png", "thumb-64.png"]
    for thumbnail in done["result"]:
        served = client.get(thumbnail["url"])
        assert served.mimetype == "image/png"
        assert Image.open(io.BytesIO(served.data)).size == (thumbnail["width"], thumbnail["height"])
    assert done["progress"] == {"current": 3, "total": 3, "percent": 100, "message": "256 px"}


@pytest.mark.parametrize(
    ("data", "filename", "status", "words"),
    [
        (image_bytes()[:300], "broken.png", 422, "corrupt"),
        (image_bytes(size=(9000, 9000), mode="1"), "bomb.png", 422, "pixels"),
        (b"\x89PNG" + b"\0" * (10 * 1024 * 1024), "huge.png", 413, "larger than"),
        (b"%PDF-1.4 not an image", "doc.pdf", 415, "not an image"),
        (image_bytes(image_format="BMP"), "old.bmp", 415, "BMP"),
    ],
)
def test_bad_uploads_get_their_4xx_and_enqueue_nothing(idle_app, data, filename, status, words):
    client = idle_app.test_client()
    response = upload(client, data, filename=filename)
    assert response.status_code == status
    assert words in response.get_json()["message"]
    assert idle_app.extensions["redis"].llen("heavy") == 0
    assert client.get("/api/tasks").get_json() == []


def truncated(image_format: str) -> bytes:
    """A photo-like image of ``image_format`` cut to two thirds: its header is whole."""
    noise = Image.effect_noise((320, 240), 64).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, image_format)
    data = buffer.getvalue()
    return data[: len(data) * 2 // 3]


def broken_png_data() -> bytes:
    """A PNG whose compressed pixel data is garbage (its chunks' CRCs fixed up)."""
    import struct
    import zlib

    data = bytearray(image_bytes(size=(64, 64)))
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    data[start + 4 : start + 4 + length] = bytes(range(256)) * (length // 256) + bytes(length % 256)
    crc = zlib.crc32(bytes(data[start : start + 4 + length]))
    data[start + 4 + length : start + 8 + length] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (truncated("JPEG"), "cut.jpg"),
        (truncated("GIF"), "cut.gif"),
        (broken_png_data(), "garbage.png"),
    ],
)
def test_a_corrupt_image_is_422_before_anything_is_queued(idle_app, data, filename):
    """Fails with ``Image.verify()`` alone, which decodes none of these: they got 202 and
    failed in the worker."""
    client = idle_app.test_client()
    response = upload(client, data, filename=filename)
    assert response.status_code == 422, response.get_json()
    assert "corrupt" in response.get_json()["message"]
    assert client.get("/api/tasks").get_json() == []


def test_sizes_may_be_repeated_fields_or_a_comma_list(idle_app):
    client = idle_app.test_client()
    for sizes in (["64", "128"], ["64,128"], ["128", "64,64"]):
        data = {"file": (io.BytesIO(image_bytes()), "photo.png"), "sizes": sizes}
        response = client.post(
            "/api/tasks/thumbnail", data=data, content_type="multipart/form-data"
        )
        assert response.status_code == 202, sizes
        assert response.get_json()["inputs"]["sizes"] == [64, 128], sizes


def test_bad_sizes_and_formats_are_422(client):
    assert upload(client, image_bytes(), sizes="8").status_code == 422
    assert upload(client, image_bytes(), sizes="64,abc").status_code == 422
    assert upload(client, image_bytes(), image_format="tiff").status_code == 422


def test_a_missing_file_is_422(client):
    response = client.post(
        "/api/tasks/thumbnail", data={"sizes": "64"}, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "file" in response.get_json()["errors"]["multipart"]
