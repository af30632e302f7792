"""A video job's page and a workflow's page, in a real browser (Debian's Chromium driven
by Playwright), against a real worker process, SMTP server and PyAV."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from PIL import Image
from playwright.sync_api import Page, expect
from support import RecordingSmtpHandler, serving, worker_process

from devservers.embedded_redis import free_port
from devservers.sample_video import make_video
from my_app import create_app

pytestmark = pytest.mark.timeout(180)

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def smtp() -> RecordingSmtpHandler:
    """A real SMTP server for the workflow's email step."""
    handler = RecordingSmtpHandler()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def media_server(redis_database, smtp):
    """The app served, with a worker process of its own that mails to ``smtp``."""
    url = redis_database()
    env = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp.port)}
    app = create_app("testing", REDIS_URL=url)
    with (
        worker_process(url, "--pool=threads", "--concurrency=2", "--queues=default,heavy", env=env),
        serving(app) as base_url,
    ):
        yield base_url


@pytest.fixture
def page(browser, media_server) -> Page:
    """A fresh tab on the home page, failing the test on any script error."""
    context = browser.new_context(base_url=media_server)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto("/")
    yield page
    assert errors == []
    context.close()


@pytest.mark.parametrize("preview_format", ["mp4", "webm"])
def test_a_video_job_page_plays_its_preview_and_shows_its_pictures(page, tmp_path, preview_format):
    """Uploaded from the page's form; the task's page shows the poster and the contact
    sheet, and its preview plays and seeks. Fails without the media view (no <video>),
    or when the download answers no ranges (Chromium does not seek: currentTime stays 0)."""
    clip = make_video(tmp_path / "clip.mp4", seconds=3, width=480, height=270)
    page.get_by_label("Video (MP4, WebM, MKV, MOV…)").set_input_files(clip)
    page.get_by_label("Preview format").select_option(preview_format)
    with page.expect_response("**/api/tasks/video") as response:
        page.get_by_role("button", name="Make the preview").click()
    assert response.value.status == 202, response.value.text()
    task_id = response.value.json()["id"]
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("[data-field=state]")).to_have_text("SUCCESS", timeout=60_000)
    video = page.locator("video")
    expect(video).to_have_count(1)
    page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=20_000)
    assert video.get_attribute("poster").endswith("/poster.jpg")
    for name in ("poster.jpg", "contact-sheet.jpg"):
        image = page.locator(f'[data-media="{name}"] img')
        image.evaluate("image => image.decode()")
        assert image.evaluate("image => image.naturalWidth") > 0
    # Seek to the middle: the browser asks for a range.
    page.evaluate(
        "() => new Promise(done => { const v = document.querySelector('video');"
        " v.addEventListener('seeked', done, {once: true}); v.currentTime = 1.5; })"
    )
    assert page.evaluate("document.querySelector('video').currentTime") == pytest.approx(
        1.5, abs=0.2
    )
    # The player is reached with the keyboard, and plays.
    video.focus()
    assert page.evaluate("document.activeElement.tagName") == "VIDEO"
    page.evaluate("document.querySelector('video').play()")
    page.wait_for_function(
        "() => document.querySelector('video').currentTime > 1.6", timeout=10_000
    )
    if preview_format == "mp4":
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.screenshot(path=DOCS / "video.png", full_page=True)


def test_the_photo_report_workflow_runs_from_the_page_and_its_steps_go_live(page, tmp_path, smtp):
    """The page's workflow form uploads a photo and starts the three steps; the workflow
    page shows each step's state change without a reload, and the keyboard reaches each
    step's task. Fails without the workflow page's polling (the states stay QUEUED)."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), "darkcyan").save(photo)
    page.get_by_label("Photo (JPEG, PNG, WebP or GIF)").set_input_files(photo)
    page.get_by_label("Email the report to").fill("team@example.com")
    page.get_by_role("button", name="Run the workflow").click()
    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]{36}$"))
    page.evaluate("window.__notReloaded = true")
    steps = page.locator("[data-step]")
    expect(steps).to_have_count(3)
    expect(page.locator("[data-field=state]")).to_have_text("SUCCESS", timeout=60_000)
    for name in ("thumbnails", "report", "mail"):
        expect(page.locator(f'[data-step="{name}"]')).to_have_attribute("data-state", "SUCCESS")
    assert page.evaluate("window.__notReloaded") is True
    assert len(smtp.envelopes) == 1
    expect(page.locator('[data-step="report"] a.artifact')).to_have_text("report.pdf")
    page.set_viewport_size({"width": 1280, "height": 700})
    page.screenshot(path=DOCS / "workflow.png", full_page=True)
    page.locator('[data-step="report"] strong a').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    expect(page.locator("[data-field=workflow]")).to_be_visible()
