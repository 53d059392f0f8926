"""One image, wherever it lies: the only path by which pii-blur reads an input and writes an output.

A ``Job`` names an input and where its output goes (local paths or URLs,
``piiblur.storage``); ``process_job`` reads the bytes, hands them to the
pipeline (``Blurrer.process_bytes``, no I/O) and writes what comes back,
atomically, inside the output folder. Both engines, the library's
``Blurrer.process`` and nothing else call it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from piiblur import manifest, storage
from piiblur.results import FileResult
from piiblur.settings import Settings, Status
from piiblur.storage import Location


class Blurrer(Protocol):
    """What ``process_job`` needs of ``pipeline.Blurrer``: an image file's bytes in, the blurred file's out."""

    settings: Settings

    def process_bytes(self, data: bytes, label: str, path: Path | None = None) -> tuple[FileResult, bytes | None]:
        ...


@dataclass(frozen=True)
class Job:
    source: Location
    target: Location
    label: str  # path relative to the input, for messages and the report
    source_mtime: float | None = None  # from the listing of a URL input
    output_root: Location | None = None  # writes must stay inside it (symlinks followed)


@dataclass
class Outcome:
    """One image's result and, when its output was written, what the manifest keeps of input and output."""

    result: FileResult
    source: dict[str, Any] | None = None  # the input as it was read: size, time, SHA-256
    output: dict[str, Any] | None = None  # the output as it was written: size, time, SHA-256


def process_job(blurrer: Blurrer, job: Job, dry_run: bool) -> Outcome:
    """One image, wherever it lies: the one path both engines take.

    Whatever goes wrong (a MemoryError, a codec's bug) is this image's failure, never the batch's.
    """
    try:
        return _process_job(blurrer, job, dry_run)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if isinstance(exc, MemoryError):
            why = f"out of memory ({why})"
        return Outcome(FileResult(job.label, None, Status.FAILED, why))


def _process_job(blurrer: Blurrer, job: Job, dry_run: bool) -> Outcome:
    if not dry_run and job.output_root is not None:
        try:
            storage.check_write(job.target, job.output_root, job.source)
        except storage.Refused as exc:
            return Outcome(FileResult(job.label, str(job.target), Status.FAILED, str(exc)))
    start = time.perf_counter()
    try:
        before = _source_stamp(job)  # before reading: a change while it is read shows at the next run
        data = storage.read_bytes(job.source, blurrer.settings.max_bytes)
    except Exception as exc:  # fsspec backends raise their own errors too
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        target = None if dry_run else str(job.target)
        return Outcome(FileResult(job.label, target, Status.FAILED, f"cannot read: {reason}"))
    if before is not None and before.setdefault("size", len(data)) != len(data):
        before = None  # changed while it was read: written, but not recorded as done
    read = time.perf_counter() - start
    result, encoded = blurrer.process_bytes(data, job.label, job.source if isinstance(job.source, Path) else None)
    result.timings = {"read": round(read, 4), **result.timings}
    if dry_run or result.status == Status.FAILED:
        return Outcome(result)
    return _write(job, result, data, encoded, before)


def _write(job: Job, result: FileResult, data: bytes, encoded: bytes | None,
           before: dict[str, int] | None) -> Outcome:
    result.output = str(job.target)
    start = time.perf_counter()
    hashes = manifest.digest(data), manifest.digest(encoded if encoded is not None else data)
    try:  # from here to the manifest's line, as little as can be: a kill in between makes the image redone
        _write_bytes(job, data, encoded, before)
        after = manifest.stamp(job.target)
    except Exception as exc:
        result.status, result.reason = Status.FAILED, f"cannot write: {exc}"
        return Outcome(result)
    result.written = True
    result.timings["write"] = round(time.perf_counter() - start, 4)
    if before is None or after is None:
        return Outcome(result)
    return Outcome(result, {**before, "sha256": hashes[0]}, {**after, "sha256": hashes[1]})


def _source_stamp(job: Job) -> dict[str, int] | None:
    if isinstance(job.source, str) and job.source_mtime is not None:  # the listing's time; the size is the bytes'
        return {"mtime_ns": math.floor(job.source_mtime) * 1_000_000_000}
    return manifest.stamp(job.source)


def _write_bytes(job: Job, data: bytes, encoded: bytes | None, before: dict[str, int] | None) -> None:
    """The blurred bytes, or else the very bytes that were searched (not the source as it is now)."""
    if encoded is not None:
        storage.write_atomic(job.target, encoded, job.source)
        return
    storage.write_atomic(job.target, data, job.source)
    if isinstance(job.source, Path) and isinstance(job.target, Path) and before is not None:
        os.utime(job.target, ns=(before["mtime_ns"], before["mtime_ns"]))  # the same file, its time too
