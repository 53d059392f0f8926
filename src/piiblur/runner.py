"""The batch: walk the input, process every image in worker processes, report.

Each worker process loads the detectors once and is handed one image at a
time. A worker that dies (killed for memory, a signal) is replaced, and only
the image it was on fails; any other error in an image is that image's
failure. Ctrl-C (or SIGTERM) stops the workers within seconds and keeps what
they finished. An image is skipped only when the output folder's manifest
(``piiblur.manifest``) says pii-blur wrote its output from the same input with
the same settings, and the output is still as written. The output tree
mirrors the input's folders and names. Input and output are local folders or
URLs (``piiblur.storage``); the work runs in local worker processes (this
module) or on a Ray cluster (``piiblur.ray_engine``), through the same
``process_job``.

Worker count and threads are set together: ``workers`` processes (default one
per core), each with ``cores // workers`` onnxruntime and OpenCV threads, so
that they do not fight over the cores.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from piiblur import manifest, storage
from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.manifest import Manifest
from piiblur.pipeline import Blurrer, FileResult, Settings
from piiblur.storage import Location

ENGINES = ("local", "ray")


class UsageError(Exception):
    """A problem with what the user asked for (paths, options); nothing was done."""


@dataclass(frozen=True)
class Job:
    source: Location
    target: Location
    label: str  # path relative to the input, for messages and the report
    source_mtime: float | None = None  # from the listing of a URL input
    output_root: Location | None = None  # writes must stay inside it (symlinks followed)


@dataclass
class BatchResult:
    files: list[FileResult] = field(default_factory=list)
    not_images: int = 0
    hidden: int = 0  # hidden names (leading dot) passed over
    seconds: float = 0.0
    stopped_by: int | None = None  # the signal that stopped the run before the end (SIGINT, SIGTERM)

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
        return Outcome(FileResult(job.label, None, "failed", why))


def _process_job(blurrer: Blurrer, job: Job, dry_run: bool) -> Outcome:
    if not dry_run and job.output_root is not None:
        try:
            storage.check_write(job.target, job.output_root, job.source)
        except storage.Refused as exc:
            return Outcome(FileResult(job.label, str(job.target), "failed", str(exc)))
    start = time.perf_counter()
    try:
        before = _source_stamp(job)  # before reading: a change while it is read shows at the next run
        data = storage.read_bytes(job.source, blurrer.settings.max_bytes)
    except Exception as exc:  # fsspec backends raise their own errors too
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return Outcome(FileResult(job.label, None if dry_run else str(job.target), "failed", f"cannot read: {reason}"))
    if before is not None and before.setdefault("size", len(data)) != len(data):
        before = None  # changed while it was read: written, but not recorded as done
    read = time.perf_counter() - start
    result, encoded = blurrer.process_bytes(data, job.label, job.source if isinstance(job.source, Path) else None)
    result.timings = {"read": round(read, 4), **result.timings}
    if dry_run or result.status == "failed":
        return Outcome(result)
    result.output = str(job.target)
    start = time.perf_counter()
    hashes = manifest.digest(data), manifest.digest(encoded if encoded is not None else data)
    try:  # from here to the manifest's line, as little as can be: a kill in between makes the image redone
        _write(job, data, encoded, before)
        after = manifest.stamp(job.target)
    except Exception as exc:
        result.status, result.reason = "failed", f"cannot write: {exc}"
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


def _write(job: Job, data: bytes, encoded: bytes | None, before: dict[str, int] | None) -> None:
    """The blurred bytes, or else the very bytes that were searched (not the source as it is now)."""
    if encoded is not None:
        storage.write_atomic(job.target, encoded, job.source)
        return
    storage.write_atomic(job.target, data, job.source)
    if isinstance(job.source, Path) and isinstance(job.target, Path) and before is not None:
        os.utime(job.target, ns=(before["mtime_ns"], before["mtime_ns"]))  # the same file, its time too


# worker side ----------------------------------------------------------------
_blurrer: Blurrer | None = None


def _init_worker(settings: Settings, memory: int | None = None) -> None:
    global _blurrer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, _raise_exit)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
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


def _work(job: Job, dry_run: bool) -> Outcome:
    assert _blurrer is not None
    return process_job(_blurrer, job, dry_run)


def _worker_main(conn: Connection, scratch: str, settings: Settings, dry_run: bool, memory: int | None) -> None:
    """A worker process: load the models, then one job at a time until told to stop (None) or the parent is gone.

    Its temporary files (the lossless JPEG path's) go into ``scratch``, a folder the parent removes
    whatever becomes of the worker: a worker killed mid-image leaves no copy of that image behind.
    """
    tempfile.tempdir = scratch
    os.environ["TMPDIR"] = scratch
    try:
        _init_worker(settings, memory)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(("done", _work(job, dry_run)))


# parent side ----------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """SIGTERM in the parent: stop as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


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
) -> BatchResult:
    """Process ``jobs``; an image is skipped only when the output folder's manifest says that pii-blur wrote
    its output, from the same input, with the same settings, and the output is still as written.

    Ctrl-C or SIGTERM stops the workers within seconds; what was written by then is recorded, and the
    result has ``stopped_by`` set. ``worker_memory`` (bytes) limits each worker process's address space.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    batch = BatchResult()
    start = time.perf_counter()
    book = Manifest(output_folder(jobs[0])) if jobs and not dry_run else None
    key = manifest.settings_key(settings)

    def record(outcome: Outcome) -> None:
        result = outcome.result
        if book is not None and result.written and outcome.source and outcome.output:
            try:
                book.add(manifest.entry(result, key, outcome.source, outcome.output))
            except Exception as exc:  # the image is done; without its line a rerun does it again
                result.notes.append(f"not recorded in the manifest ({type(exc).__name__}: {exc}): a rerun redoes it")
        batch.files.append(result)
        if on_result:
            on_result(result)

    previous = _handle(signal.SIGTERM, _interrupt)
    try:
        todo = jobs if book is None or overwrite else _resume(jobs, book, key, record)
        if not dry_run:
            for root in {storage.parent(j.target) for j in todo}:
                storage.sweep_temporaries(root)
        if engine == "local":
            _run_local(todo, settings, workers, dry_run, worker_memory, record)
        else:
            from piiblur.ray_engine import ray_results

            for outcome in ray_results(todo, settings, dry_run, ray_address, workers):
                record(outcome)
    except KeyboardInterrupt as exc:
        batch.stopped_by = getattr(exc, "signum", signal.SIGINT)
    finally:
        _handle(signal.SIGTERM, previous)
        if book is not None:
            book.close()
    batch.seconds = time.perf_counter() - start
    return batch


def _handle(signum: int, handler: Any) -> Any:
    """Set a signal handler where one can be set (the main thread); returns the one before."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, handler)


def _resume(jobs: list[Job], book: Manifest, key: str, record: Callable[[Outcome], None]) -> list[Job]:
    """Report the jobs an earlier run finished as skipped; return the rest."""
    records = book.load()
    if not records:
        return list(jobs)
    stamps = _Stamps()
    todo: list[Job] = []
    for job in jobs:
        earlier = records.get(job.label)
        if earlier is not None and earlier.get("settings") == key and manifest.still_valid(
            earlier, key, stamps.now(job.source, job.label), stamps.now(job.target, job.label)
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
    result = FileResult(job.label, str(job.target), "skipped", reason)
    for name in ("width", "height", "orientation", "projection", "detections", "notes"):
        if name in found:
            setattr(result, name, found[name])
    return result


def _run_local(todo: list[Job], settings: Settings, workers: int, dry_run: bool, memory: int | None,
               record: Callable[[Outcome], None]) -> None:
    if not todo:
        return
    workers = max(1, min(workers, len(todo)))
    if settings.threads == 0:
        settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
    if workers == 1 and memory is None:  # in this process: no worker to start
        _init_local(settings)
        for job in todo:
            record(_work(job, dry_run))
        return
    pool = _Pool(settings, workers, dry_run, memory)
    try:
        for outcome in pool.results(todo):
            record(outcome)
    except KeyboardInterrupt:
        for outcome in pool.stop():
            record(outcome)
        raise
    finally:
        pool.close()


class WorkerStartError(Exception):
    """No worker process could load the models: the batch cannot go on."""


@dataclass
class _Worker:
    process: Any
    conn: Connection
    scratch: str  # its temporary folder, removed when it is retired
    job: Job | None = None


class _Pool:
    """Worker processes that take one image at a time. One that dies is replaced, and its image alone fails."""

    STOP_GRACE = 3.0  # seconds an interrupted worker has to exit before it is killed

    def __init__(self, settings: Settings, count: int, dry_run: bool, memory: int | None) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.args = (settings, dry_run, memory)
        self.scratch = tempfile.mkdtemp(prefix="pii-blur-workers-")
        self.started_ok = False
        self.failed_starts = 0
        self.workers: list[_Worker] = [self._start() for _ in range(count)]

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        scratch = tempfile.mkdtemp(dir=self.scratch)
        process = self.context.Process(target=_worker_main, args=(child, scratch, *self.args), daemon=True,
                                       name="pii-blur-worker")
        process.start()
        child.close()
        return _Worker(process, parent, scratch)

    def results(self, jobs: list[Job]) -> Iterator[Outcome]:
        queue = deque(jobs)
        while self.workers:
            handles: dict[Any, _Worker] = {}
            for worker in self.workers:
                handles[worker.conn] = handles[worker.process.sentinel] = worker
            for ready in mp_connection.wait(list(handles)):
                worker = handles[ready]
                if worker in self.workers:  # not already seen through its other handle
                    yield from self._serve(worker, queue)

    def _serve(self, worker: _Worker, queue: deque[Job]) -> Iterator[Outcome]:
        message = _receive(worker.conn)
        if message is None:  # it died
            yield from self._lost(worker, queue)
            return
        kind, payload = message
        if kind == "error":
            raise WorkerStartError(f"a worker process could not start: {payload}")
        if kind == "done":
            worker.job = None
            yield payload
        else:
            self.started_ok = True
        self._hand_out(worker, queue)

    def _hand_out(self, worker: _Worker, queue: deque[Job]) -> None:
        worker.job = queue.popleft() if queue else None
        with contextlib.suppress(OSError):  # if it died meanwhile, its sentinel tells
            worker.conn.send(worker.job)
        if worker.job is None:
            self._retire(worker)

    def _lost(self, worker: _Worker, queue: deque[Job]) -> Iterator[Outcome]:
        self._retire(worker)
        how = _death(worker.process.exitcode)
        if worker.job is None:
            self.failed_starts += 1
            if not self.started_ok or self.failed_starts >= 3:
                raise WorkerStartError(f"a worker process died while loading the models ({how})")
        else:
            reason = f"the worker process died on this image ({how}); the other images go on"
            yield Outcome(FileResult(worker.job.label, None, "failed", reason))
        if queue:
            self.workers.append(self._start())

    def _retire(self, worker: _Worker) -> None:
        self.workers.remove(worker)
        worker.process.join(1.0)
        worker.conn.close()
        if not worker.process.is_alive():
            shutil.rmtree(worker.scratch, ignore_errors=True)

    def stop(self) -> list[Outcome]:
        """Stop now: images in flight are dropped, results already sent are kept."""
        ignoring = _handle(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        try:
            for worker in self.workers:
                worker.process.terminate()
            deadline = time.monotonic() + self.STOP_GRACE
            finished: list[Outcome] = []
            for worker in self.workers:
                worker.process.join(max(0.0, deadline - time.monotonic()))
                while (message := _receive(worker.conn)) is not None:
                    if message[0] == "done":
                        finished.append(message[1])
            return finished
        finally:
            _handle(signal.SIGINT, ignoring)

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join()
            worker.conn.close()
        self.workers = []
        shutil.rmtree(self.scratch, ignore_errors=True)


def _receive(conn: Connection) -> tuple[str, Any] | None:
    """The next message from a worker, or None when there is none (it died, or has nothing to say)."""
    try:
        if conn.poll():
            message: tuple[str, Any] = conn.recv()
            return message
    except (EOFError, OSError, ValueError, pickle.UnpicklingError):
        pass
    return None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _init_local(settings: Settings) -> None:
    global _blurrer
    if _blurrer is None or _blurrer.settings != settings:
        set_worker_threads(settings.threads)
        _blurrer = Blurrer(settings)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def is_terminal() -> bool:
    return sys.stderr.isatty()
