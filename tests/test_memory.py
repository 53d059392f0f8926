"""A worker's memory: the nets' activations are given back once an image is searched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from piiblur.detectors import OnnxRuntimeOptions, load_detectors
from piiblur.detectors.base import CPU_MEM_ARENA, release_shared_arena


def resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or not CPU_MEM_ARENA,
                    reason="needs Linux's /proc and the shared CPU arena")
def test_the_nets_activations_are_given_back_once_an_image_is_searched() -> None:
    """The shared arena keeps the largest view's activations; held while the image is blurred and
    written, they set a worker's peak memory (an 8000x4000 panorama: about 400 MB of 1.25 GB)."""
    (faces,) = load_detectors(["face"], OnnxRuntimeOptions(threads=1))
    release_shared_arena([faces])  # what earlier runs in this process left in the arena
    before = resident_mb()
    view = np.random.default_rng(0).integers(0, 255, (2048, 2048, 3), dtype=np.uint8)
    faces.detect(view, 0.5)
    grown = resident_mb()
    assert grown > before + 100, (before, grown)  # the activations of one large view
    release_shared_arena([faces])
    assert resident_mb() < before + 0.25 * (grown - before), (before, grown, resident_mb())
