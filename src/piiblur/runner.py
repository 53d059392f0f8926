"""The batch: walk the input, process every image in worker processes, report.

Each worker loads the detectors once. Work is handed out a few files at a
time, so a million-file tree never sits in memory as futures. The output tree
mirrors the input's folders and names.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.pipeline import Blurrer, FileResult, Settings
from piiblur.storage import is_up_to_date, sweep_temporaries


class UsageError(Exception):
    """A problem with what the user asked for (paths, options); nothing was done."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    label: str  # path relative to the input, for messages and the report


@dataclass
class BatchResult:
    files: list[FileResult] = field(default_factory=list)
    not_images: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


def plan(input_path: Path, output_dir: Path) -> tuple[list[Job], int]:
    """The jobs for ``input_path`` (a file or a folder) and how many non-image files were skipped."""
    if not input_path.exists():
        raise UsageError(f"input not found: {input_path}")
    src, out = input_path.resolve(), output_dir.resolve()
    if input_path.is_dir() and (out == src or src in out.parents):
        raise UsageError(f"output folder {output_dir} is the input folder or inside it; choose another")
    if input_path.is_file():
        if out == src.parent:
            raise UsageError(f"output folder {output_dir} holds the input file; choose another")
        return [Job(input_path, output_dir / input_path.name, input_path.name)], 0
    jobs: list[Job] = []
    not_images = 0
    for path in sorted(_walk(input_path)):
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            rel = path.relative_to(input_path)
            jobs.append(Job(path, output_dir / rel, rel.as_posix()))
        else:
            not_images += 1
    return jobs, not_images


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                yield Path(dirpath) / name


# worker side ----------------------------------------------------------------
_blurrer: Blurrer | None = None


def _init_worker(settings: Settings) -> None:
    global _blurrer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, _raise_exit)
    _blurrer = Blurrer(settings)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _work(job: Job, dry_run: bool) -> FileResult:
    assert _blurrer is not None
    return _blurrer.process(job.source, None if dry_run else job.target, job.label)


# parent side ----------------------------------------------------------------
def run(
    jobs: list[Job],
    settings: Settings,
    workers: int = 1,
    dry_run: bool = False,
    overwrite: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchResult:
    batch = BatchResult()
    start = time.perf_counter()
    todo: list[Job] = []
    for job in jobs:
        if not overwrite and not dry_run and is_up_to_date(job.source, job.target):
            result = FileResult(job.label, str(job.target), "skipped", "output exists and is up to date")
            batch.files.append(result)
            if on_result:
                on_result(result)
        else:
            todo.append(job)
    for root in {j.target.parent for j in todo}:
        sweep_temporaries(root)
    workers = max(1, min(workers, len(todo)))
    if settings.threads == 0:
        settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
    signal.signal(signal.SIGTERM, _raise_exit)
    for result in _results(todo, settings, workers, dry_run):
        batch.files.append(result)
        if on_result:
            on_result(result)
    batch.seconds = time.perf_counter() - start
    return batch


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
        _blurrer = Blurrer(settings)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def is_terminal() -> bool:
    return sys.stderr.isatty()
