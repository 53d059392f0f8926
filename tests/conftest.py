from __future__ import annotations

import numpy as np
import pytest
from helpers import EXAMPLE
from PIL import Image

# modules whose tests mostly run the whole command (which loads the nets), start servers or load models
SLOW_MODULES = {"test_cli", "test_fail_closed_batch", "test_fail_closed_paths", "test_storage", "test_ray",
                "test_model_files", "test_plate_band", "test_turned_plates"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` the tests that load the nets (the ``blurrer`` fixture) or are in ``SLOW_MODULES``, so that
    ``pytest -m "not slow"`` runs in seconds; a plain ``pytest`` still runs everything."""
    for item in items:
        if "blurrer" in getattr(item, "fixturenames", ()) or item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


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
