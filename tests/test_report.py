"""PDF reports: rendered with a Unicode font, served as an artifact, bad text refused."""

from __future__ import annotations

import io

from pypdf import PdfReader
from support import wait_for_state

from my_app.jobs.report import render_report, unsupported_characters

REPORT = {
    "title": "Quarterly report — Zürich",
    "sections": [
        {"heading": "Summary", "text": "Revenue grew 12 % in Q3.\nПривет, ½ ≤ ∞."},
        {"heading": "Outlook", "text": "Steady."},
    ],
    "table": {"columns": ["Quarter", "Revenue"], "rows": [["Q2", 100], ["Q3", 112.5]]},
}


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_render_report_writes_title_sections_and_unicode():
    progress = []
    data, pages = render_report(
        REPORT["title"],
        REPORT["sections"],
        {"columns": ["Quarter", "Revenue"], "rows": [["Q2", "100"], ["Q3", "112.5"]]},
        lambda current, total, message=None: progress.append((current, total)),
    )
    assert data.startswith(b"%PDF-")
    assert pages == 1
    text = pdf_text(data)
    for expected in ("Quarterly report — Zürich", "Summary", "Привет", "Outlook", "112.5"):
        assert expected in text
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_characters_the_font_lacks_are_named():
    assert unsupported_characters("Zürich Привет") == ""
    assert unsupported_characters("東京 report") == "京東"


def test_the_report_job_serves_its_pdf_as_an_artifact(client):
    response = client.post("/api/tasks/report", json=REPORT)
    assert response.status_code == 202
    task = wait_for_state(client, response.headers["Location"], {"SUCCESS"})
    pdf_url = task["links"]["artifacts"]["report.pdf"]
    assert pdf_url == f"/api/tasks/{task['id']}/artifacts/report.pdf"
    assert task["result"]["url"] == pdf_url
    assert task["progress"]["percent"] == 100
    download = client.get(pdf_url + "?download=1")
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert "Привет" in pdf_text(download.data)
    assert client.get(pdf_url).headers["Content-Disposition"].startswith("inline")


def test_a_dated_report_reaches_the_worker_as_a_date(client):
    # Celery serialises the inputs, so a schema may load a date and the task receives one.
    response = client.post("/api/tasks/report", json={**REPORT, "as_of": "2026-09-30"})
    task = wait_for_state(client, response.headers["Location"], {"SUCCESS"})
    assert task["inputs"]["as_of"] == "2026-09-30"
    assert "As of 2026-09-30" in pdf_text(client.get(task["result"]["url"]).data)


def test_unknown_artifacts_are_404(client):
    task = client.post("/api/tasks/report", json=REPORT).get_json()
    wait_for_state(client, task["links"]["self"], {"SUCCESS"})
    response = client.get(f"/api/tasks/{task['id']}/artifacts/secrets.txt")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_text_the_font_cannot_draw_is_a_422_naming_the_field(client):
    body = {**REPORT, "sections": [REPORT["sections"][0], {"heading": "日本", "text": "ok"}]}
    response = client.post("/api/tasks/report", json=body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]
    assert "日本" in errors["sections"]["1"]["heading"][0]


def test_rows_must_match_the_columns(client):
    body = {**REPORT, "table": {"columns": ["a", "b"], "rows": [["1", "2"], ["3"]]}}
    response = client.post("/api/tasks/report", json=body)
    assert response.status_code == 422
    assert "Expected 2 cells" in str(response.get_json()["errors"])


def test_a_report_too_long_to_render_quickly_is_422(client):
    sections = [{"heading": f"Part {i}", "text": "x" * 20_000} for i in range(11)]
    response = client.post("/api/tasks/report", json={"title": "Long", "sections": sections})
    assert response.status_code == 422
    assert "at most 200000" in str(response.get_json()["errors"]["json"]["sections"])
