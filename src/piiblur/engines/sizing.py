"""How many worker processes a machine takes, and how many threads each.

Workers beat threads: on the CPU one worker per core, each with one onnxruntime and OpenCV thread,
gives more images per second than fewer workers with more threads (README, "Throughput"). A worker
peaks at about 1.1 GB on an 8000x4000 panorama, so the default also leaves each worker 1.5 GB of
the memory available (a container's limit included): a margin for larger files and other formats.
"""

from __future__ import annotations

import os
from pathlib import Path

WORKER_MEMORY = 1536 * 2**20  # bytes a worker may need on an 8000x4000 panorama, with a margin


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (the kernel's estimate, within a cgroup's limit), or None."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    except OSError:
        pass
    return max(0, min(found)) if found else None


def default_workers() -> int:
    """One worker per core, as many as the available memory holds (at least one)."""
    memory = available_memory()
    by_memory = cores() if memory is None else max(1, memory // WORKER_MEMORY)
    return max(1, min(cores(), by_memory))


def threads_per_worker(workers: int) -> int:
    """The cores shared out among ``workers``: one thread each when there are as many workers as cores."""
    return max(1, cores() // max(1, workers))
