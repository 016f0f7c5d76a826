"""Notebook views: escaped HTML, the topology SVG, and a real browser's picture of them."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from pgstream.ops.plan import Plan, PlanReport
from pgstream.ops.status import ClusterStatus
from pgstream.render import html, units

CHROMIUM = Path("/usr/bin/chromium")
MEASURE = ("<p id='measured'></p><script>document.getElementById('measured').textContent = "
           "document.documentElement.scrollWidth + ' ' + window.innerWidth;</script>")


def page(status: ClusterStatus, plan: Plan, report: PlanReport, findings: list[Any]) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'></head>"
            "<body style='background:#fff;margin:8px'>"
            + status._repr_html_() + "<hr>" + plan._repr_html_() + "<hr>"
            + report._repr_html_() + "<hr>"
            + html.check_report_html(findings) + "</body></html>")


Samples = tuple[ClusterStatus, Plan, PlanReport, list[Any]]


@pytest.fixture
def samples(sample_status: ClusterStatus, sample_plan: Plan, sample_report: PlanReport,
            sample_findings: list[Any]) -> Samples:
    return sample_status, sample_plan, sample_report, sample_findings


def test_everything_users_give_is_escaped(samples: Samples) -> None:
    text = page(*samples)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text


def test_status_view_draws_nodes_arrows_colours_and_lag(sample_status: ClusterStatus) -> None:
    view = sample_status._repr_html_()
    svg = view[view.index("<svg"):view.index("</svg>")]
    for name in ("primary", "standby1", "standby2", "standby3", "standby4", "oldprimary"):
        assert f">{name}</text>" in svg
    assert svg.count("marker-end=") == 4  # one arrow per standby, the failed node has none
    assert "64.0 kB · 42 ms" in svg and "3.0 MB · 2.5 s" in svg and "900.0 MB" in svg
    assert html.GREEN[0] in svg and html.RED[0] in svg and html.GREY[0] in svg
    assert "timeline 3" in view and "failed, awaiting rejoin: oldprimary" in view
    assert "History" in view and "failover" in view and "Problems" in view
    assert "<b>standby3</b>: unreachable; disconnected; slot wal_status lost" in view
    assert "accepts writes (not in recovery)" in view
    assert "standby1</b>" not in view.split("Problems")[1].split("</div>")[0]  # healthy


def test_status_view_with_findings_names_their_codes(sample_status: ClusterStatus) -> None:
    view = html.status_html(sample_status, [("slot_wal_lost", "error", "standby3")])
    assert "slot_wal_lost (error)" in view
    assert ">slot_wal_lost</text>" in view  # in standby3's box


def test_plan_report_and_check_views(samples: Samples) -> None:
    plan = samples[1]._repr_html_()
    assert "db2.example" in plan and "base backup" in plan and "PGPASSFILE" in plan
    assert plan.count("<tr") == 4  # heading + 3 steps
    report = samples[2]._repr_html_()
    assert "copied 31 MB" in report and "unchanged" in report and "1.85 s" in report
    check = html.check_report_html(samples[3])
    assert "2 errors, 1 warning, 1 info" in check
    assert "slot_wal_lost" in check and "re-clone standby3" in check
    assert "Plan:</b> add standby5" in check  # the fix as a plan
    plain = html.check_report_html([("hba_missing", "error", "standby1")])
    assert "hba_missing" in plain and "1 error," in plain
    assert "no findings: healthy" in html.check_report_html([])


def test_human_units() -> None:
    assert [units.human_bytes(v) for v in (None, 0, 1023, 1536, 3 << 20, 5 << 30)] == [
        "-", "0 B", "1023 B", "1.5 kB", "3.0 MB", "5.0 GB"]
    assert [units.human_seconds(v) for v in (None, 0.0042, 2.5, 75, 7300)] == [
        "-", "4 ms", "2.5 s", "1 min 15 s", "2 h 1 min"]


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes): width, height, rows of pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows = zlib.decompress(idat), width * bpp, []
    prev = bytearray(stride)
    for y in range(height):
        at = y * (stride + 1)
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line if bpp == 3 else b"".join(
            bytes(line[i:i + 3]) for i in range(0, stride, 4))))
        prev = line
    return width, height, rows


def _has_colour(rows: list[bytes], hex_colour: str) -> bool:
    wanted = bytes.fromhex(hex_colour.lstrip("#"))
    return any(wanted in row for row in rows)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed "
                                                   "(apt-get install chromium)")
def test_chromium_renders_the_views(samples: Samples) -> None:
    """What a person sees: a real browser draws the page; the picture has the status's
    colours (green streaming, red problems, grey failed) and is far from blank."""
    work = Path(tempfile.mkdtemp(prefix="pgstream-chromium-"))
    try:
        (work / "page.html").write_text(page(*samples), encoding="utf-8")
        shot = work / "shot.png"
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={work / 'profile'}", "--hide-scrollbars",
             "--window-size=1200,1400", f"--screenshot={shot}", (work / "page.html").as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "HOME": str(work)})
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        measured = work / "measured.html"  # the page, measuring its own width once laid out
        measured.write_text(page(*samples).replace("</body>", MEASURE + "</body>"),
                            encoding="utf-8")
        dom = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={work / 'profile'}", "--hide-scrollbars",
             "--window-size=1200,1400", "--dump-dom", measured.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "HOME": str(work)})
        found = re.search(r'id="measured">(\d+) (\d+)<', dom.stdout)
        assert found is not None, dom.stderr[-2000:]
        scroll_width, window_width = int(found[1]), int(found[2])
        assert window_width == 1200
        assert scroll_width <= window_width  # nothing runs off the page to the right
        if os.environ.get("PGSTREAM_KEEP_SCREENSHOT"):
            shutil.copy(shot, os.environ["PGSTREAM_KEEP_SCREENSHOT"])
        width, height, rows = _pixels(shot.read_bytes())
        assert (width, height) == (1200, 1400)
        colours = {row[i:i + 3] for row in rows[::7] for i in range(0, len(row), 21)}
        assert len(colours) > 20  # text, boxes and tables; a blank page has one colour
        for colour in (html.GREEN[1], html.RED[1], html.GREY[1], html.BLUE[1]):  # box fills
            assert _has_colour(rows, colour), colour
        top = rows[: height // 3]
        assert _has_colour(top, html.GREEN[0]) and _has_colour(top, html.RED[0])  # strokes
    finally:
        shutil.rmtree(work, ignore_errors=True)
