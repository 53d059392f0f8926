"""The equirectangular projection: a 360 panorama (or a GPano crop of one), searched on views of the sphere."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors import Detector
from piiblur.projections import gpano, sphere_blur
from piiblur.projections.sphere_detect import confirm, detect_sphere
from piiblur.projections.sphere_geometry import Equirect
from piiblur.settings import Projection as Choice
from piiblur.settings import Views

# Panorama views are searched down to this share of each class's threshold; a find under the threshold
# is kept only when a closer look confirms it (sphere_detect.confirm). Figures: README, "Panoramas".
PANORAMA_THRESHOLD_SHARE = 0.5


@dataclass(frozen=True)
class Equirectangular:
    geo: Equirect
    views: Views = Views.STANDARD
    name = "equirectangular"

    def detect(self, rgb: np.ndarray, detectors: list[Detector], thresholds: dict[str, float]) -> Detections:
        search = {name: value * PANORAMA_THRESHOLD_SHARE for name, value in thresholds.items()}
        found = detect_sphere(rgb, self.geo, detectors, search, self.views)
        return confirm(rgb, self.geo, found, detectors, thresholds)

    def blur(self, pixels: np.ndarray, found: Detections, strength: float) -> np.ndarray:
        return sphere_blur.blur(pixels, found, self.geo, strength)

    def protected(self, found: Detections, shape: tuple[int, int], strength: float) -> np.ndarray:
        return sphere_blur.protected(found, self.geo, strength)


def recognise(width: int, height: int, data: bytes, choice: Choice, views: Views,
              notes: list[str] | None) -> Equirectangular | None:
    """The projection of a panorama, or None when the image is not one (GPano ignored is noted in ``notes``)."""
    geo = gpano.equirect_for(width, height, data, choice, notes)
    return None if geo is None else Equirectangular(geo, views)
