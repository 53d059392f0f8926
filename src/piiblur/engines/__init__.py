"""Engines: where the jobs run. Each module is one engine with the same entry point,

``results(jobs, settings, dry_run, workers, memory, address, seconds) -> Iterator[Outcome]``,

yielding each job's outcome as it finishes (in any order); the batch (``piiblur.batch``)
records them. A new engine is one new module plus its line in ``ENGINES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Protocol

from piiblur.errors import UsageError
from piiblur.job import Job, Outcome
from piiblur.results import FileResult
from piiblur.settings import Settings, Status

ENGINES = {"local": "piiblur.engines.local", "ray": "piiblur.engines.ray"}

# The most one image may take (``--time-limit``) when the user does not say: no image within the pixel limit
# takes this long on any machine pii-blur runs on (300 megapixels: about two minutes a worker here); a
# worker or actor that does is taken to hang, and is killed and replaced.
DEFAULT_TIME_LIMIT = 3600.0


def over_time(job: Job, seconds: float, worker: str) -> Outcome:
    """The outcome of an image stopped by the time limit: it fails alone."""
    why = (f"stopped after {seconds:.0f} s, the time limit of one image (--time-limit): its {worker} was "
           "killed and replaced; the other images go on")
    return Outcome(FileResult(job.label, None, Status.FAILED, why))


class Results(Protocol):
    def __call__(self, jobs: list[Job], settings: Settings, dry_run: bool, workers: int, memory: int | None,
                 address: str | None, seconds: float | None) -> Iterator[Outcome]: ...


def engine(name: str) -> Results:
    """The ``results`` function of the engine called ``name``; its module (and Ray) is imported only now."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    results: Results = importlib.import_module(ENGINES[name]).results
    return results
