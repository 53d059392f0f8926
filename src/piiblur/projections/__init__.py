"""Projections: how an image's pixels lie, how it is searched, and how a detection is blurred in it.

Each module is one projection with the ``Projection`` protocol; ``RECOGNISERS`` lists, in order, those
that recognise their images (a panorama by its GPano or its shape), and an image none claims is planar.
A new projection is one new module plus its line in ``RECOGNISERS``. What they share: ``camera`` (pinhole
views of the sphere), ``sphere_geometry`` (a panorama's place on the sphere, views rendered from it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors import Detector
from piiblur.projections import equirect
from piiblur.projections.planar import PLANAR
from piiblur.settings import Projection as Choice
from piiblur.settings import Views


class Projection(Protocol):
    name: str  # as the report gives it: "planar", "equirectangular"

    def detect(self, rgb: np.ndarray, detectors: list[Detector], thresholds: dict[str, float]) -> Detections:
        """Everything to hide in an upright 8-bit RGB picture, at each class's threshold, in its pixels."""
        ...

    def blur(self, pixels: np.ndarray, found: Detections, strength: float) -> np.ndarray:
        """``pixels`` with every detection hidden; pixels outside every mask untouched."""
        ...

    def protected(self, found: Detections, shape: tuple[int, int], strength: float) -> np.ndarray:
        """The pixels ``blur`` hides, as a boolean mask of ``shape``."""
        ...


Recogniser = Callable[[int, int, bytes, Choice, Views, "list[str] | None"], "Projection | None"]
RECOGNISERS: tuple[Recogniser, ...] = (equirect.recognise,)


def projection_for(width: int, height: int, data: bytes, choice: Choice, views: Views,
                   notes: list[str] | None = None) -> Projection:
    """The projection of an upright image of ``width`` x ``height`` whose file is ``data``."""
    if choice != Choice.PLANAR:
        for recognise in RECOGNISERS:
            found = recognise(width, height, data, choice, views, notes)
            if found is not None:
                return found
    return PLANAR
