from __future__ import annotations

import numpy as np
import pytest
from helpers import EXAMPLE
from PIL import Image


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLE).convert("RGB")).copy()


@pytest.fixture(scope="session")
def blurrer():
    from piiblur.pipeline import Blurrer, Settings

    return Blurrer(Settings(threads=2))


@pytest.fixture
def empty_scene() -> np.ndarray:
    """A smooth sky-to-ground picture with nothing to hide."""
    h, w = 240, 320
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky, ground = np.array([120, 170, 230], np.float32), np.array([90, 120, 60], np.float32)
    return np.broadcast_to(sky * (1 - ys) + ground * ys, (h, w, 3)).astype(np.uint8).copy()
