"""What a run tells: the JSON report, the failure lines and the summary."""

from __future__ import annotations

import datetime
import json
import signal
import sys
import time
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from piiblur import __version__
from piiblur.results import BatchResult, FileResult
from piiblur.settings import Settings
from piiblur.storage import write_atomic


def as_json(
    batch: BatchResult, settings: Settings, input_path: Path | str, output_dir: Path | str, dry_run: bool
) -> dict[str, Any]:
    return {
        "tool": "pii-blur",
        "version": __version__,
        "input": str(input_path),
        "output": str(output_dir),
        "dry_run": dry_run,
        "interrupted": None if batch.stopped_by is None else signal.Signals(batch.stopped_by).name,
        "settings": {
            "classes": list(settings.classes),
            "thresholds": settings.thresholds,
            "strength": settings.strength,
            "max_pixels": settings.max_pixels,
            "device": settings.device,
        },
        "coordinates": "boxes are x1, y1, x2, y2 in pixels of the upright image (EXIF orientation applied)",
        "summary": summary_counts(batch),
        "files": [asdict(f) for f in batch.files],
    }


def summary_counts(batch: BatchResult) -> dict[str, Any]:
    return {
        "images": len(batch.files),
        "blurred": batch.count("blurred"),
        "copied": batch.count("copied"),
        "skipped": batch.count("skipped"),
        "failed": batch.count("failed"),
        "not_images": batch.not_images,
        "hidden": batch.hidden,
        "faces": sum(f.count("face") for f in batch.files),
        "plates": sum(f.count("plate") for f in batch.files),
        "seconds": round(batch.seconds, 2),
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


def summary_line(batch: BatchResult, dry_run: bool) -> str:
    c = summary_counts(batch)
    verb = "would be " if dry_run else ""
    parts = [
        f"{counted(c['images'], 'image')} read",
        f"{c['blurred']} {verb}blurred",
        f"{c['copied']} {verb}copied unchanged",
        f"{c['skipped']} skipped (already done)",
        f"{c['failed']} failed",
    ]
    if c["not_images"]:
        parts.append(f"{counted(c['not_images'], 'non-image file')} ignored")
    if c["hidden"]:
        parts.append(f"{counted(c['hidden'], 'hidden file or folder', 'hidden files or folders')} skipped")
    found = f"{counted(c['faces'], 'face')} and {counted(c['plates'], 'plate')}"
    return f"{', '.join(parts)}; {found} found in {c['seconds']:.1f} s"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``."""
    return f"{number} {noun if number == 1 else (plural or noun + 's')}"


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name ...) escaped, so it stays on its line."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch
                   for ch in text)


class Progress:
    """Images per second, megapixels per second and the time left, counted over the images processed.

    On a terminal a tqdm bar; elsewhere (a cluster job's log) one line every ``every`` seconds.
    Images skipped as already done count neither in the rate nor in what is left. The clock
    runs from the start (or from the last skipped image, so that checking what is done does
    not count), not from the first image finished: that image's own time counts too.
    """

    def __init__(self, total: int, terminal: bool, every: float = 30.0, stream: IO[str] | None = None) -> None:
        self.total, self.terminal, self.every = total, terminal, every
        self.stream = stream or sys.stderr
        self.skipped = self.done = 0
        self.megapixels = 0.0
        self.start = self.last_line = time.perf_counter()
        self.bar: Any = None
        if terminal:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", dynamic_ncols=True, file=self.stream)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def update(self, result: FileResult) -> None:
        if result.status == "skipped":
            self.skipped += 1
            if not self.done:
                self.start = time.perf_counter()
            if self.bar is not None:
                self.bar.total = self.total - self.skipped
                self.bar.refresh()
            return
        now = time.perf_counter()
        if not self.done and self.bar is not None:
            self.bar.reset(total=self.total - self.skipped)
        self.done += 1
        self.megapixels += result.width * result.height / 1e6
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.rate_mp():.1f} MP/s", refresh=False)
            self.bar.update(1)
        elif now - self.last_line >= self.every:
            self.last_line = now
            print(f"pii-blur: {self.status_line()}", file=self.stream)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def rate_mp(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.megapixels / elapsed if elapsed > 0 else 0.0

    def status_line(self) -> str:
        left = self.total - self.skipped - self.done
        rate = self.rate()
        eta = str(datetime.timedelta(seconds=round(left / rate))) if rate > 0 else "?"
        skipped = f", {self.skipped} already done" if self.skipped else ""
        todo = counted(self.total - self.skipped, "image")
        return (f"{self.done}/{todo}{skipped}, {rate:.2f} img/s, "
                f"{self.rate_mp():.1f} MP/s, ETA {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
