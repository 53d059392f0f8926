"""The batch: walk the input, process every image in worker processes, report.

Each worker loads the detectors once. Work is handed out a few files at a
time, so a million-file tree never sits in memory as futures. The output tree
mirrors the input's folders and names. Input and output are local folders or
URLs (``piiblur.storage``); the work runs in local worker processes (this
module) or on a Ray cluster (``piiblur.ray_engine``), through the same
``process_job``.

Worker count and threads are set together: ``workers`` processes (default one
per core), each with ``cores // workers`` onnxruntime and OpenCV threads, so
that they do not fight over the cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from piiblur import storage
from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.journal import Journal
from piiblur.pipeline import Blurrer, FileResult, Settings
from piiblur.storage import Location, is_url

ENGINES = ("local", "ray")


class UsageError(Exception):
    """A problem with what the user asked for (paths, options); nothing was done."""


@dataclass(frozen=True)
class Job:
    source: Location
    target: Location
    label: str  # path relative to the input, for messages and the report
    source_mtime: float | None = None  # from the listing of a URL input
    target_mtime: float | None = None  # from the listing of a URL output (None: not there)
    target_listed: bool = False  # the output was listed, so target_mtime None means absent
    output_root: Location | None = None  # writes must stay inside it (symlinks followed)


@dataclass
class BatchResult:
    files: list[FileResult] = field(default_factory=list)
    not_images: int = 0
    hidden: int = 0  # hidden names (leading dot) passed over
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


@dataclass
class Passed:
    """What ``plan`` passed over in the input."""

    not_images: int = 0
    hidden: int = 0  # names starting with a dot (a hidden folder counts once)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # folders that could not be listed


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
    done: dict[str, float | None] | None = None
    if is_url(output_dir):  # one listing instead of one request per image
        done = dict(storage.list_files(output_dir))
    jobs: list[Job] = []
    listing = storage.Listing()
    passed = Passed()
    for rel, stamp in sorted(storage.list_files(input_path, listing)):
        if os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS:
            source, target = storage.join(input_path, rel), storage.join(output_dir, rel)
            if done is None:
                jobs.append(Job(source, target, rel, stamp, output_root=output_dir))
            else:
                jobs.append(Job(source, target, rel, stamp, done.get(rel), True, output_root=output_dir))
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


def is_done(job: Job) -> bool:
    """True when an earlier run already wrote ``job.target`` and the source has not changed since."""
    if not job.target_listed and not is_url(job.source):
        return storage.is_up_to_date(job.source, job.target)
    target_time = job.target_mtime if job.target_listed else storage.mtime(job.target)
    if target_time is None:
        return False
    source_time = job.source_mtime if job.source_mtime is not None else storage.mtime(job.source)
    # object stores keep whole seconds: compare at that resolution
    return source_time is not None and target_time >= math.floor(source_time)


def process_job(blurrer: Blurrer, job: Job, dry_run: bool) -> FileResult:
    """One image, wherever it lies: the one path both engines take."""
    if not dry_run and job.output_root is not None:
        try:
            storage.check_write(job.target, job.output_root, job.source)
        except storage.Refused as exc:
            return FileResult(job.label, str(job.target), "failed", str(exc))
    if isinstance(job.source, Path) and isinstance(job.target, Path):
        return blurrer.process(job.source, None if dry_run else job.target, job.label)
    start = time.perf_counter()
    try:
        data = storage.read_bytes(job.source, blurrer.settings.max_bytes)
    except Exception as exc:  # fsspec backends raise their own errors too
        return FileResult(job.label, None if dry_run else str(job.target), "failed", f"cannot read: {exc}")
    read = time.perf_counter() - start
    result, encoded = blurrer.process_bytes(data, job.label)
    result.timings = {"read": round(read, 4), **result.timings}
    if dry_run or result.status == "failed":
        return result
    result.output = str(job.target)
    start = time.perf_counter()
    try:
        if encoded is None:
            storage.copy_atomic(job.source, job.target, data)
        else:
            storage.write_atomic(job.target, encoded, job.source)
        result.written = True
    except Exception as exc:
        result.status, result.reason = "failed", f"cannot write: {exc}"
    result.timings["write"] = round(time.perf_counter() - start, 4)
    return result


# worker side ----------------------------------------------------------------
_blurrer: Blurrer | None = None


def _init_worker(settings: Settings) -> None:
    global _blurrer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, _raise_exit)
    set_worker_threads(settings.threads)
    _blurrer = Blurrer(settings)


def set_worker_threads(threads: int) -> None:
    """Give OpenCV (views, blur) the same share of the cores as onnxruntime; keep freed memory for reuse."""
    if threads > 0:
        import cv2

        cv2.setNumThreads(threads)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Let glibc keep large freed blocks instead of unmapping them.

    Each image allocates and frees the same large buffers (views, tiles, activations:
    onnxruntime's arena is off to bound memory). By default glibc maps every block over
    32 MB afresh and hands it back on free, so the next image faults every page in
    again: 1.8 million page faults and 17% of the time in the kernel for an 8000x4000
    panorama, and two workers faulting at once slow each other down. With blocks up to
    32 MB (a view, a tile's input, most activations) kept on the heap and up to 64 MB of
    free heap kept, the faults go and the worker's peak stays about 1.3-1.4 GB for an
    8000x4000 panorama (benchmarks/speed.py); keeping more bought no speed, only memory.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: blocks up to this come from the heap
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD: free heap kept before giving it back
    except (OSError, AttributeError):  # not glibc: its default behaviour
        pass


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _work(job: Job, dry_run: bool) -> FileResult:
    assert _blurrer is not None
    return process_job(_blurrer, job, dry_run)


# parent side ----------------------------------------------------------------
def run(
    jobs: list[Job],
    settings: Settings,
    workers: int = 1,
    dry_run: bool = False,
    overwrite: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    journal: Journal | None = None,
) -> BatchResult:
    """Process ``jobs``; images an earlier run finished are skipped.

    With a ``journal`` each result is recorded as it comes, and a skipped image is
    reported with what the earlier run that wrote its output found.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    batch = BatchResult()
    start = time.perf_counter()
    earlier = journal.load() if journal is not None and not dry_run else {}
    todo: list[Job] = []
    for job in jobs:
        if not overwrite and not dry_run and is_done(job):
            result = _skipped(job, earlier.get(job.label))
            batch.files.append(result)
            if on_result:
                on_result(result)
        else:
            todo.append(job)
    if not dry_run:
        for root in {storage.parent(j.target) for j in todo}:
            storage.sweep_temporaries(root)
    if engine == "local":
        workers = max(1, min(workers, len(todo)))
        if settings.threads == 0:
            settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
        results = _results(todo, settings, workers, dry_run)
    else:
        from piiblur.ray_engine import ray_results

        results = ray_results(todo, settings, dry_run, ray_address, workers)
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        for result in results:
            batch.files.append(result)
            if journal is not None:
                journal.add(result)
            if on_result:
                on_result(result)
    finally:
        if journal is not None:
            journal.close()
    batch.seconds = time.perf_counter() - start
    return batch


def _skipped(job: Job, record: dict[str, Any] | None) -> FileResult:
    result = FileResult(job.label, str(job.target), "skipped", "output exists and is up to date")
    if record is not None:  # what the run that wrote it found
        if record.get("status") in ("blurred", "copied"):
            result.reason = f"output exists and is up to date ({record['status']} by an earlier run)"
        elif record.get("status") == "skipped":
            result.reason = record.get("reason", result.reason)
        for key in ("width", "height", "orientation", "projection", "detections", "notes"):
            if key in record:
                setattr(result, key, record[key])
    return result


def _results(jobs: list[Job], settings: Settings, workers: int, dry_run: bool) -> Iterator[FileResult]:
    if not jobs:
        return
    if workers == 1:
        _init_local(settings)
        for job in jobs:
            yield _work(job, dry_run)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(settings,)) as pool:
        pending: set[cf.Future[FileResult]] = set()
        queue = iter(jobs)
        try:
            while True:
                for job in queue:
                    pending.add(pool.submit(_work, job, dry_run))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _init_local(settings: Settings) -> None:
    global _blurrer
    if _blurrer is None or _blurrer.settings != settings:
        set_worker_threads(settings.threads)
        _blurrer = Blurrer(settings)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def is_terminal() -> bool:
    return sys.stderr.isatty()
