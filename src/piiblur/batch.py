"""The batch: plan the jobs, skip what is done, run the rest on an engine, journal what was written.

An image is skipped only when the output folder's manifest (``piiblur.manifest``)
says pii-blur wrote its output from the same input with the same settings, and
the output is still as written. The output tree mirrors the input's folders and
names. Input and output are local folders or URLs (``piiblur.storage``); the
jobs run on an engine (``piiblur.engines``), each through ``job.process_job``.
Ctrl-C (or SIGTERM) stops the engine within seconds and keeps what it finished.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piiblur import engines, manifest, storage
from piiblur.errors import UsageError
from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.job import Job, Outcome
from piiblur.manifest import Manifest
from piiblur.results import BatchResult, FileResult
from piiblur.settings import Settings, Status
from piiblur.signals import interrupt, set_handler
from piiblur.storage import Location


@dataclass
class Passed:
    """What ``plan`` passed over in the input."""

    not_images: int = 0
    hidden: int = 0  # names starting with a dot (a hidden folder counts once)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # folders that could not be listed

    def folder_failures(self) -> list[FileResult]:
        """The folders that could not be read, each as a failed result."""
        return [FileResult(f"{rel}/", None, Status.FAILED, f"cannot read this folder: {why}")
                for rel, why in self.unreadable]


def plan(input_path: Location, output_dir: Location) -> tuple[list[Job], Passed]:
    """The jobs for ``input_path`` (a file or a folder, local or a URL) and what was passed over.

    Refuses (``UsageError``) any layout where an output could land on an input: locations
    are compared where they really are, whatever their spelling (relative, symlinked,
    ``file://``, trailing slash). ``storage.Unreachable`` when a URL cannot be asked.
    """
    if not storage.exists(input_path):
        raise UsageError(f"input not found: {input_path}")
    if isinstance(output_dir, Path) and output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output folder {output_dir} is a file; choose a folder")
    if not storage.is_dir(input_path):
        return [_single_job(input_path, output_dir)], Passed()
    if storage.same(output_dir, input_path) or storage.inside(output_dir, input_path):
        raise UsageError(f"output folder {output_dir} is the input folder or inside it; choose another")
    if storage.inside(input_path, output_dir):
        raise UsageError(f"input folder {input_path} is inside the output folder {output_dir}; choose another")
    jobs: list[Job] = []
    listing = storage.Listing()
    passed = Passed()
    for rel, stamp in sorted(storage.list_files(input_path, listing)):
        if os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS:
            source, target = storage.join(input_path, rel), storage.join(output_dir, rel)
            jobs.append(Job(source, target, rel, stamp, output_root=output_dir))
        else:
            passed.not_images += 1
    passed.hidden, passed.unreadable = listing.hidden, listing.unreadable
    return jobs, passed


def _single_job(input_path: Location, output_dir: Location) -> Job:
    name = storage.name(input_path)
    target = storage.join(output_dir, name)
    if storage.same(output_dir, storage.parent(input_path)) or storage.same(target, input_path):
        raise UsageError(f"output folder {output_dir} holds the input file; choose another")
    return Job(input_path, target, name, output_root=output_dir)


def output_folder(job: Job) -> Location:
    """The output folder ``job`` writes into: its target less its relative path."""
    return _root(job.target, job.label)


def _root(loc: Location, label: str) -> Location:
    if isinstance(loc, Path):
        return Path(*loc.parts[: len(loc.parts) - len(Path(label).parts)])
    return loc[: -len(label) - 1] if loc.endswith("/" + label) else storage.parent(loc)


def run(
    jobs: list[Job],
    settings: Settings,
    workers: int = 1,
    dry_run: bool = False,
    overwrite: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    worker_memory: int | None = None,
    passed: Passed | None = None,
    time_limit: float | None = None,
) -> BatchResult:
    """Process ``jobs``; an image is skipped only when the output folder's manifest says that pii-blur wrote
    its output, from the same input, with the same settings, and the output is still as written.

    Ctrl-C or SIGTERM stops the workers within seconds; what was written by then is recorded, and the
    result has ``stopped_by`` set. ``worker_memory`` (bytes) limits each worker process's address space,
    ``time_limit`` (seconds; 0: none, None: the engine's default) the time one image may take.
    ``passed`` (from ``plan``) is counted in the result, its unreadable folders as failures at the end.
    """
    results = engines.engine(engine)
    batch = BatchResult()
    start = time.perf_counter()
    book = Manifest(output_folder(jobs[0])) if jobs and not dry_run else None
    record = _Recorder(batch, book, manifest.settings_key(settings), on_result)
    previous = set_handler(signal.SIGTERM, interrupt)
    try:
        todo = jobs if book is None or overwrite else _resume(jobs, book, record)
        if not dry_run:
            for root in {storage.parent(j.target) for j in todo}:
                storage.sweep_temporaries(root)
        _drain(results(todo, settings, dry_run, workers, worker_memory, ray_address, time_limit), record)
    except KeyboardInterrupt as exc:
        batch.stopped_by = getattr(exc, "signum", signal.SIGINT)
    finally:
        set_handler(signal.SIGTERM, previous)
        if book is not None:
            book.close()
    batch.seconds = time.perf_counter() - start
    if passed is not None:
        batch.files.extend(passed.folder_failures())
        batch.not_images, batch.hidden = passed.not_images, passed.hidden
    return batch


class _Recorder:
    """Takes each outcome: its manifest line when its output was written, its result into the batch."""

    def __init__(self, batch: BatchResult, book: Manifest | None, key: str,
                 on_result: Callable[[FileResult], None] | None) -> None:
        self.batch, self.book, self.key, self.on_result = batch, book, key, on_result

    def __call__(self, outcome: Outcome) -> None:
        result = outcome.result
        if self.book is not None and result.written and outcome.source and outcome.output:
            try:
                self.book.add(manifest.entry(result, self.key, outcome.source, outcome.output))
            except Exception as exc:  # the image is done; without its line a rerun does it again
                result.notes.append(f"not recorded in the manifest ({type(exc).__name__}: {exc}): a rerun redoes it")
        self.batch.files.append(result)
        if self.on_result:
            self.on_result(result)


def _drain(outcomes: Iterator[Outcome], record: Callable[[Outcome], None]) -> None:
    """Record every outcome. An interrupt while one is recorded is handed to the engine, which then yields
    what its workers had finished and stops; the interrupt goes on up."""
    try:
        for outcome in outcomes:
            record(outcome)
    except KeyboardInterrupt as exc:
        if getattr(outcomes, "gi_frame", None) is not None and hasattr(outcomes, "throw"):
            try:
                outcome = outcomes.throw(exc)
                while True:
                    record(outcome)
                    outcome = next(outcomes)
            except (KeyboardInterrupt, StopIteration):
                pass
        raise


def _resume(jobs: list[Job], book: Manifest, record: _Recorder) -> list[Job]:
    """Report the jobs an earlier run finished as skipped; return the rest."""
    records = book.load()
    if not records:
        return list(jobs)
    stamps = _Stamps()
    todo: list[Job] = []
    for job in jobs:
        earlier = records.get(job.label)
        if earlier is not None and earlier.get("settings") == record.key and manifest.still_valid(
            earlier, record.key, stamps.now(job.source, job.label), stamps.now(job.target, job.label)
        ):
            record(Outcome(_skipped(job, earlier)))
        else:
            todo.append(job)
    return todo


class _Stamps:
    """Sizes and times of files now: a stat for a local file, one listing per URL folder."""

    def __init__(self) -> None:
        self.listings: dict[str, dict[str, manifest.Stamp]] = {}

    def now(self, loc: Location, label: str) -> manifest.Stamp | None:
        if isinstance(loc, Path):
            return manifest.stamp(loc)
        root = str(_root(loc, label))
        if root not in self.listings:
            self.listings[root] = manifest.stamps_under(root)
        return self.listings[root].get(loc[len(root) + 1:])


def _skipped(job: Job, earlier: dict[str, Any]) -> FileResult:
    found = earlier.get("result") or {}
    reason = f"output exists and is up to date ({found.get('status', 'written')} by an earlier run)"
    result = FileResult(job.label, str(job.target), Status.SKIPPED, reason)
    for name in ("width", "height", "orientation", "projection", "detections", "notes"):
        if name in found:
            setattr(result, name, found[name])
    return result
