"""The browser UI in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright.sync_api import Page, Route, expect
from pypdf import PdfReader
from support import serving, wait_until, worker_process
from werkzeug.serving import make_server

from devservers.embedded_redis import free_port
from my_app import create_app
from my_app.tasks import slow_task


@pytest.fixture(scope="module")
def database_url(redis_database):
    """A database of this module's own on the session's Redis."""
    return redis_database()


SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def ui_app(database_url):
    """The app on a database of its own."""
    return create_app("testing", REDIS_URL=database_url, WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])


@pytest.fixture(scope="module")
def ui_server(database_url, ui_app):
    """The app served, with a worker process of its own.

    Jobs that earlier tests left queued or cancelled cannot delay what the browser waits for.
    """
    app = ui_app
    with (
        worker_process(
            database_url,
            "--pool=threads",
            "--concurrency=4",
            "--queues=default,heavy",
            env={"FLASK_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]'},
        ),
        serving(app) as base_url,
    ):
        yield base_url


@pytest.fixture
def page(browser, ui_server) -> Page:
    """A fresh tab on the service's home page, failing the test on any script error."""
    context = browser.new_context(base_url=ui_server, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto("/")
    expect(page.locator("[data-connection]")).to_contain_text("Live")
    page.evaluate("window.__notReloaded = true")
    yield page
    assert page.evaluate("window.__notReloaded") is True, "the page reloaded"
    assert errors == []
    context.close()


def submit(page: Page, form_endpoint: str, button: str) -> str:
    """Click a form's submit button; return the id of the task it created."""
    with page.expect_response(f"**{form_endpoint}") as response:
        page.get_by_role("button", name=button).click()
    assert response.value.status == 202, response.value.text()
    return response.value.json()["id"]


def row(page: Page, task_id: str):
    return page.locator(f'tr[data-task-id="{task_id}"]')


def test_a_slow_job_fills_its_bar_and_succeeds_without_a_reload(page):
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Seconds").fill("3")
    task_id = submit(page, "/api/tasks/slow", "Start")
    expect(row(page, task_id)).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    page.wait_for_function(
        f"""() => {{
            const bar = document.querySelector('tr[data-task-id="{task_id}"] progress');
            return bar && bar.value > 0 && bar.value < 100;
        }}""",
        timeout=15_000,
    )
    expect(row(page, task_id)).to_have_attribute("data-state", "SUCCESS", timeout=45_000)
    expect(row(page, task_id).locator("progress")).to_have_attribute("value", "100")
    expect(page.locator("#announcer")).to_contain_text("SUCCESS")


def test_cancelling_a_running_job_shows_revoked(page):
    page.get_by_label("Seconds").fill("60")
    task_id = submit(page, "/api/tasks/slow", "Start")
    expect(row(page, task_id)).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    row(page, task_id).get_by_role("button", name="Cancel").click()
    expect(row(page, task_id)).to_have_attribute("data-state", "REVOKED", timeout=15_000)
    expect(row(page, task_id).get_by_role("button", name="Retry")).to_be_visible()


def test_a_report_can_be_downloaded_as_a_pdf_that_opens(page, tmp_path):
    page.get_by_label("Title").fill("Browser report — Zürich")
    page.get_by_role("button", name="Add section").click()
    page.locator('[name="sections.1.heading"]').fill("Second section")
    page.locator('[name="sections.1.text"]').fill("Added in the browser.")
    task_id = submit(page, "/api/tasks/report", "Render")
    expect(row(page, task_id)).to_have_attribute("data-state", "SUCCESS", timeout=45_000)
    with page.expect_download() as download:
        row(page, task_id).get_by_role("link", name="report.pdf").click()
    saved = tmp_path / "report.pdf"
    download.value.save_as(saved)
    text = "".join(p.extract_text() for p in PdfReader(saved).pages)
    assert "Browser report — Zürich" in text and "Second section" in text


def test_an_uploaded_png_shows_its_thumbnails(page, tmp_path):
    picture = tmp_path / "picture.png"
    Image.new("RGB", (400, 300), "purple").save(picture)
    page.get_by_label("Image (JPEG, PNG, WebP or GIF)").set_input_files(picture)
    page.get_by_label("Sizes in pixels (16–2048)").fill("32,96")
    task_id = submit(page, "/api/tasks/thumbnail", "Upload")
    expect(row(page, task_id)).to_have_attribute("data-state", "SUCCESS", timeout=45_000)
    thumbnails = row(page, task_id).get_by_role("img")
    expect(thumbnails).to_have_count(2)
    row(page, task_id).scroll_into_view_if_needed()  # the images load lazily, when seen
    thumbnails.evaluate_all(  # the images load lazily: wait until both have
        "images => Promise.all(images.map(image => image.decode()))"
    )
    widths = thumbnails.evaluate_all("images => images.map(image => image.naturalWidth)")
    assert sorted(widths) == [32, 96]


def test_an_invalid_address_is_shown_beside_its_field(page):
    page.get_by_label("To (comma-separated)").fill("not-an-address")
    with page.expect_response("**/api/tasks/email") as response:
        page.get_by_role("button", name="Send").click()
    assert response.value.status == 422
    expect(page.locator("#email-to-error")).to_contain_text("Not a valid email address")
    expect(page.get_by_label("To (comma-separated)")).to_have_attribute("aria-invalid", "true")


def test_a_job_submitted_over_http_appears_in_the_open_page(page, ui_server):
    task = requests.post(
        f"{ui_server}/api/tasks/slow", json={"name": "from curl", "seconds": 1}, timeout=5
    ).json()
    expect(row(page, task["id"])).to_be_visible(timeout=10_000)
    expect(row(page, task["id"])).to_have_attribute("data-state", "SUCCESS", timeout=45_000)


def test_a_job_queued_with_delay_appears_in_the_open_page(page, ui_app):
    # As from a Python shell: the task's own .delay(), no HTTP at all.
    result = ui_app.extensions["celery"].tasks[slow_task.name].delay("from a shell", 1)
    expect(row(page, result.id)).to_be_visible(timeout=10_000)
    expect(row(page, result.id)).to_have_attribute("data-state", "SUCCESS", timeout=45_000)
    expect(row(page, result.id)).to_contain_text("slow")


def test_a_browser_stops_reconnecting_to_a_finished_task(page, ui_server):
    task = requests.post(
        f"{ui_server}/api/tasks/slow", json={"name": "Done", "seconds": 0}, timeout=5
    ).json()
    task_url = ui_server + task["links"]["self"]
    wait_until(lambda: requests.get(task_url, timeout=5).json()["state"] == "SUCCESS")
    requests_made = []
    page.on(
        "request",
        lambda request: request.url.endswith(task["links"]["events"]) and requests_made.append(1),
    )
    page.evaluate("url => { window.__source = new EventSource(url); }", task["links"]["events"])
    # The final record, a reconnect after the 2 s retry delay that gets 204, then silence.
    page.wait_for_function("() => window.__source.readyState === EventSource.CLOSED",
                           timeout=15_000)  # fmt: skip
    page.wait_for_timeout(5_000)
    assert len(requests_made) == 2


def test_the_task_page_shows_the_full_record(page, ui_server):
    """The record, and its timeline drawn live up to "finished". Fails without the
    timeline's redraw in showDetail (seen failing: the list stopped at "queued")."""
    task = requests.post(
        f"{ui_server}/api/tasks/slow", json={"name": "Detail", "seconds": 2}, timeout=5
    ).json()
    page.goto(f"/tasks/{task['id']}")
    expect(page.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=45_000)
    expect(page.locator('[data-field="result"]')).to_contain_text("Task completed for Detail!")
    timeline = page.locator('[data-field="timeline"] li')
    expect(timeline.last).to_contain_text("finished · attempt 1")
    events = timeline.evaluate_all("items => items.map(item => item.dataset.event)")
    assert events[:3] == ["queued", "received", "started"]
    page.evaluate("window.__notReloaded = true")
    assert page.goto("/tasks/00000000-0000-4000-8000-000000000000").status == 404
    page.evaluate("window.__notReloaded = true")


def test_the_page_is_usable_at_360_px_and_saves_the_readme_screenshot(page, ui_server):
    for name in ("Ada", "Grace"):
        requests.post(f"{ui_server}/api/tasks/slow", json={"name": name, "seconds": 2}, timeout=5)
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[data-state=PROGRESS] progress')]"
        ".some(bar => bar.value > 0)",
        timeout=15_000,
    )
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert Image.open(io.BytesIO(SCREENSHOT.read_bytes())).width == 1280


def test_a_late_answer_never_moves_a_finished_task_back(page, ui_server):
    # A fast job's final event can reach the page before the answer to its own POST:
    # hold that answer back until the job has finished, as a slow network would.
    def answer_late(route: Route) -> None:
        accepted = route.fetch()
        task_url = ui_server + accepted.json()["links"]["self"]
        deadline = time.monotonic() + 15
        while requests.get(task_url, timeout=5).json()["state"] != "SUCCESS":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        time.sleep(0.5)  # the feed's SUCCESS event reaches the page first
        route.fulfill(response=accepted)

    page.route("**/api/tasks/slow", answer_late)
    page.get_by_label("Seconds").fill("0")
    task_id = submit(page, "/api/tasks/slow", "Start")
    expect(row(page, task_id)).to_have_attribute("data-state", "SUCCESS")
    page.wait_for_timeout(300)  # the QUEUED answer has been handled
    expect(row(page, task_id)).to_have_attribute("data-state", "SUCCESS")


def test_the_system_panel_shows_each_queue_and_the_worker_online(page):
    for queue in ("default", "heavy"):
        expect(page.locator(f'tr[data-queue="{queue}"]')).to_have_count(1)
    worker = page.locator("[data-worker]").first
    expect(worker).to_contain_text("default, heavy", timeout=15_000)
    expect(page.locator('tr[data-queue="heavy"] [data-field="consumers"]')).not_to_contain_text(
        "none"
    )


def test_the_table_filters_by_state_and_kind_and_pages_through_older_tasks(page, ui_server):
    ids = [
        requests.post(f"{ui_server}/api/tasks/slow", json={"name": f"p{n}", "seconds": 0},
                      timeout=10).json()["id"]
        for n in range(22)
    ]  # fmt: skip
    wait_until(
        lambda: all(
            requests.get(f"{ui_server}/api/tasks/{task_id}", timeout=5).json()["state"] == "SUCCESS"
            for task_id in ids
        ),
        timeout=60,
    )
    page.get_by_label("State").select_option("SUCCESS")
    page.get_by_label("Kind").select_option("slow")
    rows = page.locator("tr[data-task-id]")
    expect(rows).to_have_count(20)
    expect(page.locator('tr[data-task-id]:not([data-state="SUCCESS"])')).to_have_count(0)
    first_page = rows.first.get_attribute("data-task-id")
    assert first_page == ids[-1]  # newest first
    page.get_by_role("button", name="Older").click()
    expect(page.locator("[data-page-label]")).to_contain_text("Page 2")
    expect(rows.first).not_to_have_attribute("data-task-id", first_page)
    page.get_by_role("button", name="Newer").click()
    expect(rows.first).to_have_attribute("data-task-id", first_page)
    page.get_by_label("Kind").select_option("email")
    expect(page.locator('tr[data-task-id] a:text-matches("^slow")')).to_have_count(0)


def test_a_filtered_view_cancels_and_retries_all_it_matches_after_a_confirmation(page, ui_server):
    """Three running slow jobs: "Cancel all matching" on the PROGRESS view cancels them,
    "Retry all matching" on the REVOKED view runs each again. Fails if the buttons act
    without the confirmation (a dismissed dialog must leave the jobs running) or ignore
    the filter."""
    ids = [requests.post(f"{ui_server}/api/tasks/slow", json={"name": f"b{n}", "seconds": 30},
                         timeout=10).json()["id"] for n in range(3)]  # fmt: skip
    wait_until(lambda: all(requests.get(f"{ui_server}/api/tasks/{i}", timeout=5).json()["state"]
                           == "PROGRESS" for i in ids), timeout=30)  # fmt: skip
    status = page.locator("[data-bulk-status]")
    page.get_by_label("Kind").select_option("slow")
    page.get_by_label("State").select_option("PROGRESS")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel all matching").click()
    page.wait_for_timeout(500)
    assert all(task_state(ui_server, i) == "PROGRESS" for i in ids)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel all matching").click()
    expect(status).to_contain_text("Cancelled")
    wait_until(lambda: all(task_state(ui_server, i) == "REVOKED" for i in ids), timeout=30)
    page.get_by_label("State").select_option("REVOKED")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry all matching").click()
    expect(status).to_contain_text("Queued again")
    again = [
        requests.get(f"{ui_server}/api/tasks/{i}", timeout=5).json()["retried_by"] for i in ids
    ]
    requests.post(f"{ui_server}/api/tasks/cancel", json={"kind": "slow", "limit": 1000}, timeout=10)
    assert all(again)


def task_record(base_url: str, task_id: str) -> dict:
    return requests.get(f"{base_url}/api/tasks/{task_id}", timeout=5).json()


def task_state(base_url: str, task_id: str) -> str:
    return task_record(base_url, task_id)["state"]


def test_a_schedule_is_created_paused_resumed_and_deleted_from_the_page(page):
    """A bad time zone is said beside its field; then each button does what it says.
    Fails if a button calls the wrong address (seen failing with Pause posting to the
    resume link: the schedule never showed paused)."""
    form = page.locator("[data-schedule-form]")
    form.get_by_label("Label").fill("from the page")
    form.get_by_label("Every (s)").fill("")
    form.get_by_label("or crontab (minute hour day month weekday)").fill("0 3 * * *")
    form.get_by_label("Time zone").fill("Mars/Base")
    form.get_by_role("button", name="Create schedule").click()
    expect(form.locator('[data-error-for="timezone"]')).to_contain_text("Unknown time zone")
    form.get_by_label("Time zone").fill("Europe/Paris")
    form.get_by_role("button", name="Create schedule").click()
    item = page.locator("[data-schedules] li", has_text="from the page")
    expect(item).to_contain_text("0 3 * * * (Europe/Paris)")
    item.get_by_role("button", name="Pause").click()
    expect(item).to_contain_text("paused")
    item.get_by_role("button", name="Resume").click()
    expect(item).to_contain_text("next 20")
    page.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)


def test_the_task_page_shows_each_webhook_delivery_attempt(page, ui_server):
    """A receiver that refuses once, then accepts: the page shows both attempts live.
    Fails without the webhook's redraw in showDetail (seen failing: the section stayed
    at "pending", with no attempt)."""
    answers = iter([500])

    def receive(environ, start_response):
        status = next(answers, 204)
        start_response(f"{status} X", [("Content-Length", "0")])
        return [b""]

    server = make_server("127.0.0.1", free_port(), receive, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        callback = f"http://127.0.0.1:{server.port}/hooks"
        task = requests.post(f"{ui_server}/api/tasks/slow", params={"callback_url": callback},
                             json={"name": "Hook", "seconds": 2}, timeout=10).json()  # fmt: skip
        page.goto(f"/tasks/{task['id']}")
        page.evaluate("window.__notReloaded = true")
        section = page.locator('[data-field="webhook"]')
        expect(section).to_contain_text("pending")
        expect(section).to_contain_text("delivered", timeout=45_000)
        attempts = section.locator("li")
        expect(attempts).to_have_count(2)
        expect(attempts.first).to_contain_text("500")
        expect(attempts.last).to_contain_text("204")
    finally:
        server.shutdown()
        thread.join(timeout=10)
