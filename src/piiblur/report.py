"""What a run tells: the JSON report, the failure lines and the summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from piiblur import __version__
from piiblur.pipeline import Settings
from piiblur.runner import BatchResult
from piiblur.storage import write_atomic


def as_json(
    batch: BatchResult, settings: Settings, input_path: Path, output_dir: Path, dry_run: bool
) -> dict[str, Any]:
    return {
        "tool": "pii-blur",
        "version": __version__,
        "input": str(input_path),
        "output": str(output_dir),
        "dry_run": dry_run,
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
        f"{c['images']} images read",
        f"{c['blurred']} {verb}blurred",
        f"{c['copied']} {verb}copied unchanged",
        f"{c['skipped']} skipped (already done)",
        f"{c['failed']} failed",
    ]
    if c["not_images"]:
        parts.append(f"{c['not_images']} non-image files ignored")
    return f"{', '.join(parts)}; {c['faces']} faces and {c['plates']} plates found in {c['seconds']:.1f} s"
