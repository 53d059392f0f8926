"""How the review page copes with many large panoramas: the list, and opening one 8000x4000 panorama.

Builds OUTPUT_DIR as one copy of a panorama and N - 1 hard links to it (1000 links of an 8000x4000 JPEG
take no room), serves it with ``pii-blur review``'s server, and drives Debian's headless chromium with Playwright:

* the time until the first list entries show, and how many entries the page holds then (it should hold
  one page, not all N);
* the time from choosing the panorama to the 360 viewer's first frame (Pannellum's ``load``), measured in
  the page (``performance.now()``) and around it (Playwright's call to the page and back).

    python benchmarks/review_page.py [--pano FILE] [--count 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from piiblur.pipeline import Settings
from piiblur.review.server import Review, start

DEFAULT_PANO = (Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pano360" / "images"
                / "amsterdam_TMX7315120208-000022_pano_0001_000529.jpg")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pano", type=Path, default=DEFAULT_PANO)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="times the panorama is opened")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="piiblur-review-bench-") as tmp:
        out, src = Path(tmp) / "out", Path(tmp) / "in"
        out.mkdir()
        src.mkdir()
        first = out / "pano_0000.jpg"
        first.write_bytes(args.pano.read_bytes())  # links inside OUTPUT_DIR: the server refuses links out of it
        for n in range(1, args.count):
            os.link(first, out / f"pano_{n:04d}.jpg")
        review = Review(src, out, Settings())
        server, url = start(review)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                begin = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#images li[data-index]")
                listed = time.perf_counter() - begin
                held = page.evaluate("document.querySelectorAll('#images li[data-index]').length")
                print(f"{args.count} panoramas: first entries after {listed:.2f} s, the page holds {held} "
                      f"(of {args.count}) until the list is scrolled")
                in_page, around = [], []
                for index in range(1, args.repeat + 1):
                    begin = time.perf_counter()
                    page.evaluate(f"window.review.openImage({index})")
                    page.wait_for_function("() => window.review.state.openedMs !== null", timeout=60_000)
                    around.append(time.perf_counter() - begin)
                    in_page.append(page.evaluate("window.review.state.openedMs") / 1000)
                median_in, median_around = statistics.median(in_page), statistics.median(around)
                opens = ", ".join(f"{t:.2f}" for t in in_page)
                print(f"open one {args.pano.name} in the 360 viewer (first frame): median {median_in:.2f} s in the "
                      f"page, {median_around:.2f} s around it ({args.repeat} opens: {opens})")
                page.evaluate("document.getElementById('images').scrollTop = 1e9")
                page.wait_for_function("n => document.querySelectorAll('#images li[data-index]').length >= n",
                                       arg=min(200, args.count))
                print("scrolling the list to its end loads the next page")
                browser.close()
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
