"""The review page in a real browser: Debian's headless chromium, driven by Playwright.

Opens the page, rejects a detection in a photo, draws a box across a panorama's seam and clicks a point
on the sphere in the 360 viewer, applies, and checks the files: the rejected region has the input's
coefficients back, the drawn box and the point are blurred (the box on both sides of the seam), and
everything else keeps its coefficients. ``PIIBLUR_SCREENSHOTS=docs`` also saves the page's screenshots
there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, PLATE_BOX, detail
from PIL import Image
from test_edits import GPANO_XMP, _blocks_of, _changed_blocks

from piiblur.cli import main
from piiblur.pipeline import Settings
from piiblur.review.server import Review, start

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium chromium-driver; .ci/run does)")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PANO_W, PANO_H = 1024, 512


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    rng = np.random.default_rng(3)
    base = rng.integers(40, 215, (32, 64, 3)).astype(np.uint8)
    pano = Image.fromarray(base).resize((PANO_W, PANO_H), Image.BICUBIC)
    pano.save(src / "pano.jpg", "JPEG", quality=92, xmp=GPANO_XMP)
    report = tmp_path / "report.json"
    assert main([str(src), str(tmp_path / "out"), "-q", "-j", "1", "--report", str(report)]) == 0
    return src, tmp_path / "out", report


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _clear_status(page) -> None:
    page.evaluate("document.getElementById('status').textContent = ''")


def _wait_status(page, text: str) -> None:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text,
                           timeout=30_000)


def test_reject_draw_across_the_seam_apply(folders, browser, tmp_path: Path) -> None:
    src, out, report_path = folders
    before = tmp_path / "before"
    shutil.copytree(out, before)
    report = json.loads(report_path.read_text())
    review = Review(src, out, Settings(), report, None, tmp_path / "report.edits.json")
    server, url = start(review)
    shots = os.environ.get("PIIBLUR_SCREENSHOTS")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_selector("#images li[title='portrait.jpg']")

        # a photo: reject the plate (chosen with n, rejected with r)
        page.click("#images li[title='portrait.jpg']")
        page.wait_for_selector("#dets li")
        while "plate" not in page.inner_text("#dets li.selected"):
            page.keyboard.press("n")
        _clear_status(page)
        page.keyboard.press("r")
        _wait_status(page, "saved")
        assert "rejected" in page.get_attribute("#dets li.selected", "class")
        if shots:
            page.screenshot(path=str(Path(shots) / "review_photo.png"))

        # a panorama: opens in the 360 viewer; unrolled (v), a box drawn (d) from left of the seam to right of it
        page.click("#images li[title='pano.jpg']")
        page.wait_for_selector("#pano .pnlm-render-container")
        page.wait_for_function("() => window.review.state.openedMs !== null", timeout=30_000)
        page.keyboard.press("v")
        page.wait_for_selector("#stage .canvas svg")
        page.keyboard.press("d")
        _clear_status(page)
        start_xy = page.evaluate(f"window.review.toScreen({PANO_W - 40}, 200)")
        end_xy = page.evaluate(f"window.review.toScreen({PANO_W + 36}, 250)")
        page.mouse.move(*start_xy)
        page.mouse.down()
        page.mouse.move((start_xy[0] + end_xy[0]) / 2, (start_xy[1] + end_xy[1]) / 2, steps=4)
        page.mouse.move(*end_xy, steps=4)
        page.mouse.up()
        _wait_status(page, "saved")
        edits = json.loads((tmp_path / "report.edits.json").read_text())["images"]
        box = edits["pano.jpg"]["added"][0]["box"]
        assert box[0] < PANO_W < box[2] and box[2] - box[0] > 50  # it crosses the seam
        assert edits["portrait.jpg"]["rejected"] and not edits["portrait.jpg"]["added"]
        if shots:
            page.screenshot(path=str(Path(shots) / "review_panorama.png"))

        # back in the 360 viewer, still drawing: a click on the sphere adds a box there
        page.keyboard.press("v")
        page.wait_for_selector("#pano .pnlm-render-container")
        page.wait_for_function("() => window.review.state.viewer && window.review.state.viewer.isLoaded()",
                               timeout=30_000)
        looking = page.evaluate("[window.review.state.viewer.getYaw(), window.review.state.viewer.getPitch()]")
        holder = page.locator("#pano").bounding_box()
        _clear_status(page)
        page.mouse.click(holder["x"] + holder["width"] / 2, holder["y"] + holder["height"] / 2)
        _wait_status(page, "saved")
        point = json.loads((tmp_path / "report.edits.json").read_text())["images"]["pano.jpg"]["added"][1]
        x1, y1, x2, y2 = point["box"]
        yaw, pitch = ((x1 + x2) / 2 / PANO_W - 0.5) * 360, (0.5 - (y1 + y2) / 2 / PANO_H) * 180
        assert abs((yaw - looking[0] + 180) % 360 - 180) < 3 and abs(pitch - looking[1]) < 3

        # apply (s), and the page shows the new output
        _clear_status(page)
        page.keyboard.press("s")
        _wait_status(page, "2 image(s) written")
        assert not errors, errors
    finally:
        server.shutdown()

    # the rejected plate: the input's coefficients again; the face: as it was
    assert not _changed_blocks(src / "portrait.jpg", out / "portrait.jpg")[_blocks_of(PLATE_BOX)].any()
    assert not _changed_blocks(before / "portrait.jpg", out / "portrait.jpg")[_blocks_of(FACE_BOX)].any()
    changed = _changed_blocks(before / "portrait.jpg", out / "portrait.jpg")
    allowed = np.zeros_like(changed)
    allowed[_blocks_of(PLATE_BOX, margin=4)] = True
    assert changed.any() and not (changed & ~allowed).any()
    # the drawn box: blurred on both sides of the seam, the rest of the panorama's coefficients untouched
    raw = np.asarray(Image.open(src / "pano.jpg").convert("RGB"))
    new = np.asarray(Image.open(out / "pano.jpg").convert("RGB"))
    for part in ((PANO_W - 34, 210, PANO_W - 4, 240), (4, 210, 30, 240)):
        assert detail(new, part) < 0.25 * detail(raw, part)
    moved = _changed_blocks(before / "pano.jpg", out / "pano.jpg")
    assert moved[:16].sum() == 0 and moved[48:].sum() == 0  # the seam box and the clicked point only
    point_col = int(((x1 + x2) / 2) % PANO_W) // 8
    far = np.ones(moved.shape[1], bool)
    far[:12] = far[-12:] = False
    far[max(0, point_col - 8):point_col + 9] = False
    assert moved[:, far].sum() == 0 and moved[:, max(0, point_col - 8):point_col + 9].any()
    assert "equirectangular" in Image.open(out / "pano.jpg").info.get("xmp", b"").decode()
    # and the sidecar says the box is written, so a second apply does not blur it twice
    assert json.loads((tmp_path / "report.edits.json").read_text())["images"]["pano.jpg"]["added"][0]["applied"]
