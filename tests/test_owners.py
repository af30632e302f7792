"""Each key sees only its own tasks, on every route and in every feed; an admin sees all."""

from __future__ import annotations

import threading
import time

import pytest
from playwright.sync_api import expect
from support import ADMIN, ALICE, BOB, serving, wait_for_state

from my_app.tasks import slow_task


def feed_events(client, headers, seconds: float, opened: threading.Event | None = None) -> str:
    """What the owner feed sends ``headers``' caller in ``seconds`` (heartbeats included);
    ``opened`` is set once the feed listens (it subscribes before it answers)."""
    response = client.get("/api/tasks/events", headers=headers, buffered=False)
    assert response.status_code == 200
    if opened is not None:
        opened.set()
    received, deadline = [], time.monotonic() + seconds
    for chunk in response.response:
        received.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if time.monotonic() > deadline:
            break
    response.close()
    return "".join(received)


def test_another_key_gets_404_for_a_task_on_every_route(keyed_app):
    client = keyed_app.test_client()
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 30}, headers=ALICE)
    task = task.get_json()
    url = task["links"]["self"]
    try:
        for method, path in [
            ("get", url), ("get", f"/status/{task['id']}"), ("get", f"{url}/events"),
            ("delete", url), ("post", f"{url}/retry"), ("get", f"{url}/artifacts/report.pdf"),
        ]:  # fmt: skip
            response = getattr(client, method)(path, headers=BOB)
            assert response.status_code == 404, (method, path)
            assert response.get_json()["message"].startswith("No task")
        assert task["id"] not in [t["id"] for t in client.get("/api/tasks", headers=BOB).json]
        assert client.get(url, headers=ALICE).json["state"] in {"QUEUED", "STARTED", "PROGRESS"}
        # The admin sees it, with its owner, and may act on it.
        assert task["id"] in [t["id"] for t in client.get("/api/tasks", headers=ADMIN).json]
        assert client.get(url, headers=ADMIN).json["owner"] == "alice"
    finally:
        assert client.delete(url, headers=ADMIN).status_code == 202
    admin = keyed_app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = ADMIN["Authorization"]
    wait_for_state(admin, f"/status/{task['id']}", {"REVOKED"}, timeout=30)


def test_run_task_belongs_to_its_caller(keyed_app):
    client = keyed_app.test_client()
    accepted = client.post("/run-task/Ada?seconds=0", headers=ALICE).get_json()
    assert client.get(accepted["status_url"], headers=BOB).status_code == 404
    status = client.get(accepted["status_url"], headers=ALICE)
    assert status.status_code == 200


def test_tasks_queued_outside_the_api_belong_to_the_default_owner(keyed_app):
    with keyed_app.app_context():
        result = slow_task.delay("Shell", 0)
    client = keyed_app.test_client()
    assert client.get(f"/api/tasks/{result.id}", headers=ALICE).status_code == 404
    assert client.get(f"/api/tasks/{result.id}", headers=ADMIN).json["owner"] == "public"


def test_feeds_carry_only_the_callers_tasks_and_everything_to_an_admin(keyed_app):
    client = keyed_app.test_client()
    seen: dict[str, str] = {}
    opened = {name: threading.Event() for name in ("alice", "bob", "root")}

    def follow(name, headers):
        seen[name] = feed_events(keyed_app.test_client(), headers, 3, opened[name])

    followers = [
        threading.Thread(target=follow, args=(name, headers))
        for name, headers in (("alice", ALICE), ("bob", BOB), ("root", ADMIN))
    ]
    for follower in followers:
        follower.start()
    for feed in opened.values():
        assert feed.wait(timeout=10)
    task = client.post("/api/tasks/slow", json={"name": "Ada", "seconds": 0}, headers=ALICE).json
    for follower in followers:
        follower.join(timeout=15)
    assert task["id"] in seen["alice"]
    assert task["id"] in seen["root"]
    assert task["id"] not in seen["bob"]
    assert ": heartbeat" in seen["bob"]  # bob's feed was open all along


@pytest.mark.timeout(180)
def test_the_page_signed_in_as_each_key_shows_only_its_tasks(keyed_app, browser):
    client = keyed_app.test_client()
    alices = client.post("/api/tasks/slow", json={"name": "A", "seconds": 0}, headers=ALICE).json
    bobs = client.post("/api/tasks/slow", json={"name": "B", "seconds": 0}, headers=BOB).json
    with serving(keyed_app) as base_url:
        pages = {}
        for name in ("alice", "bob"):
            context = browser.new_context(base_url=base_url)
            page = context.new_page()
            page.goto("/")
            expect(page).to_have_url(f"{base_url}/sign-in?next=/")
            page.get_by_label("API key").fill(f"{name}-secret")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("[data-signed-in-as]")).to_have_text(name)
            expect(page.locator("[data-connection]")).to_contain_text("Live")
            pages[name] = page
        own = {"alice": alices["id"], "bob": bobs["id"]}
        for name, page in pages.items():
            other = own["bob" if name == "alice" else "alice"]
            expect(page.locator(f'tr[data-task-id="{own[name]}"]')).to_have_count(1)
            expect(page.locator(f'tr[data-task-id="{other}"]')).to_have_count(0)
            assert page.goto(f"/tasks/{other}").status == 404
            assert page.goto(f"/tasks/{own[name]}").status == 200

        # The cookie alone, without the page's Origin, cannot change anything.
        refused = pages["alice"].request.post(f"{base_url}/api/tasks/slow", data={"name": "x"})
        assert refused.status == 403

        # A new task from the page appears live, and signing out ends the session.
        page = pages["alice"]
        page.goto("/")
        page.get_by_label("Seconds").fill("0")
        with page.expect_response("**/api/tasks/slow") as response:
            page.get_by_role("button", name="Start").click()
        assert response.value.status == 202
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{base_url}/sign-in")
        assert page.request.get(f"{base_url}/api/tasks").status == 401
        for page in pages.values():
            page.context.close()
