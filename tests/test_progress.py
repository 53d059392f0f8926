"""Progress at scale: rate and time left count only the images this run processes."""

from __future__ import annotations

import io

from piiblur.report import Progress
from piiblur.results import FileResult


def test_progress_line_gives_rate_megapixels_and_eta_without_the_skipped():
    stream = io.StringIO()
    progress = Progress(10, terminal=False, every=0.0, stream=stream)
    for _ in range(4):
        progress.update(FileResult("old.jpg", None, "skipped"))
    assert stream.getvalue() == ""  # nothing processed yet: no rate to tell
    for _ in range(3):
        progress.update(FileResult("new.jpg", None, "blurred", width=8000, height=4000))
    progress.start -= 3.0  # as if the three took three seconds
    line = progress.status_line()
    assert line.startswith("3/6 images, 4 already done, ")
    rate = float(line.split(", ")[2].split()[0])
    assert 0.9 < rate < 1.01  # about one image per second
    assert "MP/s" in line and "ETA 0:00:03" in line
    assert stream.getvalue().count("pii-blur: ") == 3
