"""What every worker process does before its first image, whichever engine started it."""

from __future__ import annotations

import ctypes


def set_worker_threads(threads: int) -> None:
    """Give OpenCV (views, blur) the same share of the cores as onnxruntime; keep freed memory for reuse."""
    if threads > 0:
        import cv2

        cv2.setNumThreads(threads)
    keep_freed_memory()


KEPT_FREE = 1024 * 2**20  # bytes of free heap a worker keeps for its next image


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next image instead of giving it back to the kernel.

    Each image allocates and frees the same large buffers (the decoded picture, views, net inputs, the
    JPEG's coefficients and their copies). By default glibc maps every block over 32 MB afresh and
    unmaps it on free, so every image faults all of their pages in again: on an 8000x4000 panorama
    270,000 page faults and a tenth of the CPU time. Here every block comes from the heap and up to
    ``KEPT_FREE`` of free heap is kept: from the second image on, almost no page faults (an 8000x4000
    panorama: 11.4 -> 10.4 CPU s; a worker's peak 1.04 -> 1.16 GB, 16384x8192: 2.4 -> 2.7 GB; figures:
    README, "Speed").
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no block of its own mapping; all from the heap
        libc.mallopt(-1, KEPT_FREE)  # M_TRIM_THRESHOLD: free heap kept before giving it back
    except (OSError, AttributeError):  # not glibc: its default behaviour
        pass

