"""The names the benchmarks and tools import from before the batch was split up; new code imports from
``piiblur.batch``, ``piiblur.job``, ``piiblur.engines`` and ``piiblur.errors`` directly."""

from __future__ import annotations

from piiblur.batch import Passed, output_folder, plan, run
from piiblur.engines.sizing import default_workers
from piiblur.engines.worker_setup import keep_freed_memory as _keep_freed_memory
from piiblur.engines.worker_setup import set_worker_threads
from piiblur.errors import UsageError, WorkerStartError
from piiblur.job import Job, Outcome, process_job
from piiblur.results import BatchResult

__all__ = ["BatchResult", "Job", "Outcome", "Passed", "UsageError", "WorkerStartError", "_keep_freed_memory",
           "default_workers", "output_folder", "plan", "process_job", "run", "set_worker_threads"]
