"""What every worker process does before its first image, whichever engine started it."""

from __future__ import annotations

import ctypes


def set_worker_threads(threads: int) -> None:
    """Give OpenCV (views, blur) the same share of the cores as onnxruntime; keep freed memory for reuse."""
    if threads > 0:
        import cv2

        cv2.setNumThreads(threads)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """Let glibc keep large freed blocks instead of unmapping them.

    Each image allocates and frees the same large buffers (views, tiles, activations:
    onnxruntime's arena is off to bound memory); by default glibc unmaps every block over
    32 MB on free and the next image faults every page in again. Blocks up to 32 MB come
    from the heap and up to 64 MB of free heap is kept (figures: benchmarks/speed.py).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: blocks up to this come from the heap
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD: free heap kept before giving it back
    except (OSError, AttributeError):  # not glibc: its default behaviour
        pass
