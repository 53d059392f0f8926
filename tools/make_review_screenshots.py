"""The README's screenshots of the review page (docs/review_photo.png, docs/review_panorama.png,
docs/review_seam.png).

Blurs the example portrait and a street panorama into a temporary folder, serves ``pii-blur review`` on
them and drives Debian's headless chromium with Playwright: the photo with its plate rejected, the
panorama in the 360 viewer with its detections, and the panorama unrolled with a box drawn across the
seam.

    python tools/make_review_screenshots.py [--pano ../shared/data/pano360/images/amsterdam_...jpg]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from PIL import Image  # noqa: E402

from piiblur.cli import main as pii_blur  # noqa: E402
from piiblur.pipeline import Settings  # noqa: E402
from piiblur.review.server import Review, start  # noqa: E402

DEFAULT_PANO = ROOT.parent / "shared" / "data" / "pano360" / "images" / (
    "amsterdam_TMX7315120208-000022_pano_0001_000529.jpg")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pano", type=Path, default=DEFAULT_PANO)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="piiblur-shots-") as tmp:
        src, out, report_path = Path(tmp) / "photos", Path(tmp) / "blurred", Path(tmp) / "report.json"
        src.mkdir()
        shutil.copy(ROOT / "examples" / "street_portrait.jpg", src / "street_portrait.jpg")
        shutil.copy(args.pano, src / "street_360.jpg")
        if pii_blur([str(src), str(out), "-q", "--report", str(report_path)]) != 0:
            return 1
        report = json.loads(report_path.read_text())
        review = Review(src, out, Settings(), report, None, Path(tmp) / "report.edits.json")
        server, url = start(review)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 760})
                page.goto(url)
                page.click("#images li[title='street_portrait.jpg']")
                page.wait_for_selector("#dets li")
                while "plate" not in page.inner_text("#dets li.selected"):
                    page.keyboard.press("n")
                page.keyboard.press("r")
                page.wait_for_function("() => document.getElementById('status').textContent.includes('saved')")
                page.screenshot(path=str(args.docs / "review_photo.png"))

                page.click("#images li[title='street_360.jpg']")
                page.wait_for_function("() => window.review.state.openedMs !== null", timeout=60_000)
                for _ in range(20):  # turn to the most certain face
                    if "0.9" in page.inner_text("#dets li.selected"):
                        break
                    page.keyboard.press("n")
                time.sleep(1.5)
                page.screenshot(path=str(args.docs / "review_panorama.png"))

                page.keyboard.press("v")
                page.wait_for_selector("#stage .canvas svg")
                seam = page.evaluate("window.review.toScreen(window.review.state.info.width, "
                                     "window.review.state.info.height * 0.58)")
                page.mouse.move(*seam)
                for _ in range(4):
                    page.mouse.wheel(0, -200)
                    time.sleep(0.1)
                page.keyboard.press("d")
                width = page.evaluate("window.review.state.info.width")
                height = page.evaluate("window.review.state.info.height")
                start_xy = page.evaluate(f"window.review.toScreen({width - 90}, {height * 0.56})")
                end_xy = page.evaluate(f"window.review.toScreen({width + 80}, {height * 0.61})")
                page.mouse.move(*start_xy)
                page.mouse.down()
                page.mouse.move(*end_xy, steps=6)
                page.mouse.up()
                page.wait_for_function("() => window.review.state.added.length > 0")
                time.sleep(1.0)
                page.screenshot(path=str(args.docs / "review_seam.png"))
                browser.close()
        finally:
            server.shutdown()
    for name in ("review_photo.png", "review_panorama.png", "review_seam.png"):
        shot = args.docs / name  # 256 colours: a third of the size, the page as readable
        Image.open(shot).convert("RGB").quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            shot, optimize=True)
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
