"""Rendering a PDF report (fpdf2) with a bundled Unicode font (DejaVu Sans)."""

from __future__ import annotations

import io
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from fontTools.ttLib import TTFont
from PIL import Image

from . import ReportProgress

FONT_DIR = Path(__file__).resolve().parents[1] / "fonts"
FONT_FAMILY = "DejaVu"


@cache
def supported_characters() -> frozenset[int]:
    """The code points the report font can draw."""
    with TTFont(FONT_DIR / "DejaVuSans.ttf") as font:
        return frozenset(font.getBestCmap())


def unsupported_characters(text: str) -> str:
    """The characters of ``text`` the font cannot draw (line breaks and tabs are fine)."""
    drawable = supported_characters()
    missing = {char for char in text if ord(char) not in drawable and char not in "\n\r\t"}
    return "".join(sorted(missing))


def render_report(
    title: str,
    sections: list[dict[str, str]],
    table: dict[str, Any] | None,
    report_progress: ReportProgress,
    as_of: date | None = None,
    images: list[tuple[str, bytes]] = (),
) -> tuple[bytes, int]:
    """Render the report (dated ``as_of``, if given), with ``images`` (name, bytes) on
    a grid after the sections; returns the PDF's bytes and its page count.

    Progress is reported after each section (and the table, when there is one).
    """
    # Imported here: fpdf2 brings ~30,000 objects that only a worker rendering a report
    # needs; the web process, which validates reports, never loads it.
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    total = len(sections) + (1 if table else 0)
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("my_app")
    pdf.add_font(FONT_FAMILY, "", FONT_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT_FAMILY, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font(FONT_FAMILY, "B", 20)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    if as_of:
        pdf.set_font(FONT_FAMILY, "", 11)
        pdf.multi_cell(0, 6, f"As of {as_of.isoformat()}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    report_progress(0, total, "started")
    for done, section in enumerate(sections, start=1):
        pdf.set_font(FONT_FAMILY, "B", 14)
        pdf.multi_cell(0, 8, section["heading"], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT_FAMILY, "", 11)
        pdf.multi_cell(0, 6, section["text"], new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        report_progress(done, total, f"section {done} of {len(sections)}")
    if table:
        pdf.set_font(FONT_FAMILY, "", 10)
        with pdf.table(headings_style=FontFace(emphasis="BOLD")) as pdf_table:
            for row in [table["columns"], *table["rows"]]:
                cells = pdf_table.row()
                for value in row:
                    cells.cell(str(value))
        report_progress(total, total, "table")
    if images:
        pdf.ln(4)
        pdf.set_font(FONT_FAMILY, "B", 14)
        pdf.multi_cell(0, 8, "Images", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT_FAMILY, "", 9)
        for name, data in images:
            with Image.open(io.BytesIO(data)) as picture:
                pdf.image(picture.convert("RGB"), w=min(IMAGE_WIDTH_MM, picture.width / 4))
            pdf.multi_cell(0, 5, name, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return bytes(pdf.output()), pdf.page_no()


#: The widest an image is drawn in a report, in millimetres.
IMAGE_WIDTH_MM = 80
