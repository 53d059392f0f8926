"""The local engine: worker processes on this machine, one image at a time each.

Each worker process loads the detectors once and is handed one job at a time.
A worker that dies (killed for memory, a signal) is replaced, and only the
image it was on fails. A worker still on one image after ``seconds`` (default
``DEFAULT_TIME_LIMIT``) is killed and replaced, and that image fails: a file
that hangs a decoder cannot stall the batch. On Ctrl-C the workers are stopped within seconds and
the results they had already sent are still yielded. ``workers`` processes
(default one per core, as many as the memory holds: ``sizing``) share the
cores: each gets ``cores // workers`` onnxruntime and OpenCV threads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import resource
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from piiblur.engines import DEFAULT_TIME_LIMIT, over_time
from piiblur.engines.sizing import threads_per_worker
from piiblur.engines.worker_setup import set_worker_threads
from piiblur.errors import WorkerStartError
from piiblur.job import Job, Outcome, process_job
from piiblur.pipeline import Blurrer
from piiblur.results import FileResult
from piiblur.settings import Settings, Status
from piiblur.signals import set_handler

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


def _init_here(settings: Settings) -> None:
    global _blurrer
    if _blurrer is None or _blurrer.settings != settings:
        set_worker_threads(settings.threads)
        _blurrer = Blurrer(settings)


# parent side ----------------------------------------------------------------
def results(jobs: list[Job], settings: Settings, dry_run: bool, workers: int, memory: int | None,
            address: str | None = None, seconds: float | None = None) -> Iterator[Outcome]:
    """Each job's outcome as it finishes. ``seconds``: the most one image may take (0: no limit; None:
    ``DEFAULT_TIME_LIMIT``). With one worker and neither limit given, in this process (where nothing can
    stop a hang)."""
    if not jobs:
        return
    workers = max(1, min(workers, len(jobs)))
    if settings.threads == 0:
        settings = replace(settings, threads=threads_per_worker(workers))
    if workers == 1 and memory is None and seconds is None:  # in this process: no worker to start
        _init_here(settings)
        for job in jobs:
            yield _work(job, dry_run)
        return
    limit = DEFAULT_TIME_LIMIT if seconds is None else seconds
    pool = _Pool(settings, workers, dry_run, memory, limit or None)
    try:
        yield from pool.results(jobs)
    except KeyboardInterrupt:
        yield from pool.stop()
        raise
    finally:
        pool.close()


@dataclass
class _Worker:
    process: Any
    conn: Connection
    scratch: str  # its temporary folder, removed when it is retired
    job: Job | None = None
    since: float = 0.0  # when it was handed its job (time.monotonic)
    overdue: bool = False  # killed for taking longer than the time limit


class _Pool:
    """Worker processes that take one image at a time. One that dies is replaced, and its image alone fails."""

    STOP_GRACE = 3.0  # seconds an interrupted worker has to exit before it is killed

    def __init__(self, settings: Settings, count: int, dry_run: bool, memory: int | None,
                 seconds: float | None = None) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.args = (settings, dry_run, memory)
        self.seconds = seconds
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
            ready_ones = mp_connection.wait(list(handles), self._until_next_deadline())
            if not ready_ones:
                self._stop_overdue()
            for ready in ready_ones:
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
            if worker.overdue:  # it finished as it was being killed: what it sent counts, then it is replaced
                self._retire(worker)
                if queue:
                    self.workers.append(self._start())
                return
        else:
            self.started_ok = True
        self._hand_out(worker, queue)

    def _until_next_deadline(self) -> float | None:
        """Seconds until the first busy worker runs out of time (None: no limit, or none busy)."""
        busy = [w.since for w in self.workers if w.job is not None and not w.overdue]
        if self.seconds is None or not busy:
            return None
        return max(0.0, min(busy) + self.seconds - time.monotonic())

    def _stop_overdue(self) -> None:
        """Kill every worker that has been on its image longer than the limit (its sentinel then tells)."""
        if self.seconds is None:
            return
        now = time.monotonic()
        for worker in self.workers:
            if worker.job is not None and not worker.overdue and now - worker.since >= self.seconds:
                worker.overdue = True
                worker.process.kill()

    def _hand_out(self, worker: _Worker, queue: deque[Job]) -> None:
        worker.since = time.monotonic()
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
        elif worker.overdue and self.seconds is not None:
            yield over_time(worker.job, self.seconds, "worker")
        else:
            reason = f"the worker process died on this image ({how}); the other images go on"
            yield Outcome(FileResult(worker.job.label, None, Status.FAILED, reason))
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
        ignoring = set_handler(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
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
            set_handler(signal.SIGINT, ignoring)

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
