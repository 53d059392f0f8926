"""The equirectangular projection: a 360 panorama (or a GPano crop of one), searched on views of the sphere."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors import Detector
from piiblur.projections import gpano, sphere_blur
from piiblur.projections.planar import PLANAR
from piiblur.projections.sphere_detect import confirm, deduplicate_on_sphere, detect_sphere, from_pixels
from piiblur.projections.sphere_geometry import Equirect
from piiblur.settings import Projection as Choice
from piiblur.settings import Views

# Panorama views are searched down to this share of each class's threshold; a find under the threshold
# is kept only when a closer look confirms it (sphere_detect.confirm). Figures: README, "Panoramas".
PANORAMA_THRESHOLD_SHARE = 0.5

# A 2:1 picture without GPano is taken as a panorama by its shape alone, but it may be a flat photo of that
# shape (a phone's 18:9 frame, a crop). Near its top and bottom, views of the sphere see such a photo's
# faces squeezed to a third of their width or less, and miss them (a 2:1 test photo of 4096x2048: 4 of 6
# faces in its top and bottom eighths). A whole panorama's left and right edges are one meridian and
# meet; a flat photo's do not. Such a picture whose edges do not meet is also searched as a flat photo.
# Meeting: the mean grey difference across the seam at most SEAM_RATIO times that between neighbouring
# columns at the edges, plus SEAM_SLACK (the seven real panoramas of pano360: at most 3.25 times, 1.3 grey
# levels; 24 flat photos cut to 2:1: at least 4.4 times, 25 grey levels). Panoramas whose edges meet pay
# nothing; a file with GPano, or run with ``--projection equirectangular``, is a panorama without doubt.
SEAM_RATIO = 3.5
SEAM_SLACK = 0.5


def edges_meet(rgb: np.ndarray) -> bool:
    """True when the picture's left and right edges continue each other, as a whole panorama's do."""
    edge = np.concatenate([rgb[:, :2], rgb[:, -2:]], axis=1).astype(np.float32)  # columns 0, 1, -2, -1
    grey = edge.mean(axis=2) if edge.ndim == 3 else edge
    across = float(np.abs(grey[:, 0] - grey[:, 3]).mean())
    beside = float((np.abs(grey[:, 0] - grey[:, 1]).mean() + np.abs(grey[:, 3] - grey[:, 2]).mean()) / 2)
    return across <= SEAM_RATIO * beside + SEAM_SLACK


@dataclass(frozen=True)
class Equirectangular:
    geo: Equirect
    views: Views = Views.STANDARD
    by_shape: bool = False  # a sphere by its 2:1 shape alone (no GPano): searched flat too if its edges do not meet
    name = "equirectangular"

    def detect(self, rgb: np.ndarray, detectors: list[Detector], thresholds: dict[str, float]) -> Detections:
        search = {name: value * PANORAMA_THRESHOLD_SHARE for name, value in thresholds.items()}
        found = detect_sphere(rgb, self.geo, detectors, search, self.views)
        found = confirm(rgb, self.geo, found, detectors, thresholds)
        if not self.searched_flat_too(rgb):
            return found
        flat = from_pixels(PLANAR.detect(rgb, detectors, thresholds), self.geo)
        return deduplicate_on_sphere(Detections.merge([found, flat])) if len(flat) else found

    def searched_flat_too(self, rgb: np.ndarray) -> bool:
        """True for a sphere by its shape alone whose edges do not meet: perhaps a flat 2:1 photo."""
        return self.by_shape and not edges_meet(rgb)

    def blur(self, pixels: np.ndarray, found: Detections, strength: float) -> np.ndarray:
        return sphere_blur.blur(pixels, found, self.geo, strength)

    def protected(self, found: Detections, shape: tuple[int, int], strength: float) -> np.ndarray:
        return sphere_blur.protected(found, self.geo, strength)


def recognise(width: int, height: int, data: bytes, choice: Choice, views: Views,
              notes: list[str] | None) -> Equirectangular | None:
    """The projection of a panorama, or None when the image is not one (GPano ignored is noted in ``notes``)."""
    tags = gpano.gpano(data)
    geo = gpano.equirect_for(width, height, data, choice, notes, tags)
    if geo is None:
        return None
    by_shape = choice == Choice.AUTO and tags.get("ProjectionType", "").lower() != "equirectangular"
    return Equirectangular(geo, views, by_shape=by_shape)
