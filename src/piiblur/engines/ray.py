"""The Ray engine: the same jobs on a Ray cluster, by actors that hold the models.

``pii-blur --engine ray [--ray-address ADDRESS] INPUT OUTPUT_DIR``. Ray is an
optional extra (``pip install 'pii-blur[ray]'``) and is imported only here.

One actor per CPU of the cluster (or ``--jobs N`` actors), each loading the
detectors once and running ``job.process_job`` on the jobs it is handed,
one at a time: an actor that finishes gets the next job (a round trip of a
few milliseconds against seconds per image), so a long panorama never holds
another job back while other actors sit idle. Where the cluster has
GPUs, two actors share each GPU (``num_gpus=0.5``: one decodes or encodes
while the other's detection runs) and detection runs on CUDA. Every node
must have pii-blur installed (the same version), and must reach INPUT and
OUTPUT_DIR: an object store URL, or a folder shared by all nodes. The
driver's ``AWS_*`` and ``FSSPEC_*`` variables are handed to the workers.
An actor still on one image after the time limit (``seconds``, as the local
engine's) is killed and replaced by a fresh one, and that image fails alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from piiblur.engines import DEFAULT_TIME_LIMIT, over_time
from piiblur.engines.worker_setup import set_worker_threads
from piiblur.errors import UsageError
from piiblur.job import Job, Outcome, process_job
from piiblur.pipeline import Blurrer
from piiblur.results import FileResult
from piiblur.settings import Settings, Status

IN_FLIGHT_PER_ACTOR = 1
FORWARDED_ENV_PREFIXES = ("AWS_", "FSSPEC_", "PIIBLUR_", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_",
                          "ORT_DISABLE_TELEMETRY")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("the Ray engine needs Ray: pip install 'pii-blur[ray]'") from None
    return ray


class BlurActor:
    """Lives in a Ray worker process: the models, loaded once."""

    def __init__(self, settings: Settings) -> None:
        set_worker_threads(settings.threads)
        self.blurrer = Blurrer(settings)

    def process(self, job: Job, dry_run: bool) -> Outcome:
        return process_job(self.blurrer, job, dry_run)

    def ready(self) -> bool:
        """True once the models are loaded (an image's time limit counts from then)."""
        return True


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def results(jobs: list[Job], settings: Settings, dry_run: bool, workers: int = 0, memory: int | None = None,
            address: str | None = None, seconds: float | None = None) -> Iterator[Outcome]:
    """Results as they finish, in any order. Starts a local Ray when there is none and no address.

    ``workers``: how many actors (0: one per CPU of the cluster, two per GPU); ``memory`` is the local
    engine's and has no effect here; ``seconds``: the most one image may take (0: no limit; None:
    ``DEFAULT_TIME_LIMIT``).
    """
    if not jobs:
        return
    ray = _ray()
    started = False
    if not ray.is_initialized():
        joining = address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, runtime_env={"env_vars": forwarded_env()}, log_to_driver=False,
                 **({} if joining else {"include_dashboard": False}))
        started = True
    try:
        limit = DEFAULT_TIME_LIMIT if seconds is None else seconds
        yield from _run_on_cluster(ray, jobs, settings, dry_run, workers, limit or None)
    finally:
        if started:
            ray.shutdown()


def _run_on_cluster(ray: Any, jobs: list[Job], settings: Settings, dry_run: bool, actors: int,
                    seconds: float | None = None) -> Iterator[Outcome]:
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    if gpus and settings.device != "cpu":
        count = actors or 2 * gpus
        threads = settings.threads or max(1, cpus // count)
        options: dict[str, Any] = {"num_cpus": 1, "num_gpus": 0.5}
    else:
        count = actors or cpus
        threads = settings.threads or max(1, cpus // count)
        options = {"num_cpus": min(threads, cpus)}
    count = max(1, min(count, len(jobs)))
    settings = replace(settings, threads=threads)
    remote = ray.remote(max_restarts=2, max_task_retries=1, **options)(BlurActor)
    pool = [remote.remote(settings) for _ in range(count)]
    _loaded(ray, pool)
    queue = iter(jobs)
    in_flight: dict[Any, tuple[Any, Job, float]] = {}

    def submit(actor: Any) -> None:
        job = next(queue, None)
        if job is not None:
            in_flight[actor.process.remote(job, dry_run)] = (actor, job, time.monotonic())

    for _ in range(IN_FLIGHT_PER_ACTOR):
        for actor in pool:  # round robin: the first jobs go to different actors
            submit(actor)
    try:
        while in_flight:
            wait = None if seconds is None else max(
                0.0, min(since for _, _, since in in_flight.values()) + seconds - time.monotonic())
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait)
            if not ready:  # an image over the time limit: its actor is killed, a fresh one takes its place
                for ref, (actor, job, since) in list(in_flight.items()):
                    if seconds is not None and time.monotonic() - since >= seconds:
                        del in_flight[ref]
                        ray.kill(actor, no_restart=True)  # no retry of the image on a restarted actor
                        yield over_time(job, seconds, "actor")
                        fresh = remote.remote(settings)
                        pool[pool.index(actor)] = fresh
                        _loaded(ray, [fresh])
                        submit(fresh)
                continue
            actor, job, _ = in_flight.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # the actor died (out of memory, a crashed node) or raised
                why = f"worker failed: {type(exc).__name__}: {exc}"
                outcome = Outcome(FileResult(job.label, None, Status.FAILED, why))
            yield outcome
            submit(actor)
    finally:
        for ref in in_flight:
            ray.cancel(ref)
        for actor in pool:
            ray.kill(actor)


def _loaded(ray: Any, actors: list[Any]) -> None:
    """Wait until ``actors`` have loaded their models, so that an image's time counts from its own start;
    one that fails to start shows it on its first image instead."""
    with contextlib.suppress(Exception):  # each image of an actor that did not start reports the error
        ray.get([actor.ready.remote() for actor in actors])
