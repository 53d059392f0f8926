"""A worker's memory: the nets' activations are given back once an image is searched."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from piiblur.detectors import OnnxRuntimeOptions, load_detectors
from piiblur.detectors.base import CPU_MEM_ARENA, release_shared_arena
from piiblur.engines.worker_setup import keep_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):
        return None


def in_use_mb() -> float:
    """The memory glibc's malloc has handed out and not had back (heap and mapped blocks), in MB."""
    libc = _libc()
    assert libc is not None
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 1e6


@pytest.mark.skipif(_libc() is None or not CPU_MEM_ARENA, reason="needs glibc 2.33 or later and the shared CPU arena")
def test_the_nets_activations_are_given_back_once_an_image_is_searched() -> None:
    """The shared arena keeps the largest view's activations; held while the image is blurred and
    written, they would add to a worker's peak memory (an 8000x4000 panorama: about 400 MB of 1.1 GB).
    Released, they are free memory again, which a worker keeps for what comes next (its blur and encode)."""
    keep_freed_memory()  # as every worker does
    (faces,) = load_detectors(["face"], OnnxRuntimeOptions(threads=1))
    release_shared_arena([faces])  # what earlier runs in this process left in the arena
    before = in_use_mb()
    view = np.random.default_rng(0).integers(0, 255, (2048, 2048, 3), dtype=np.uint8)
    faces.detect(view, 0.5)
    grown = in_use_mb()
    assert grown > before + 100, (before, grown)  # the activations of one large view, held
    release_shared_arena([faces])
    assert in_use_mb() < before + 0.25 * (grown - before), (before, grown, in_use_mb())


_FAULTS = """
import resource, sys
if sys.argv[1] == "kept":
    from piiblur.engines.worker_setup import keep_freed_memory
    keep_freed_memory()
def faults_for_one_image():  # three large buffers made, filled and freed, as an image's are
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffers = [bytearray(64_000_000) for _ in range(3)]
    del buffers
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_for_one_image()
print(faults_for_one_image())
"""


@pytest.mark.skipif(_libc() is None, reason="glibc's malloc")
def test_a_worker_takes_the_next_images_buffers_from_the_memory_it_freed():
    """Without ``keep_freed_memory`` every buffer over 32 MB is mapped afresh and faulted in page by page
    for every image (a tenth of the CPU time of a panorama here); with it, the second image's buffers
    come from the memory the first one freed, with almost no page faults."""
    import subprocess
    import sys

    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return int(done.stdout.strip())

    pages = 3 * 64_000_000 // 4096
    assert faults("default") > 0.5 * pages  # each buffer faulted in again
    assert faults("kept") < 0.05 * pages
