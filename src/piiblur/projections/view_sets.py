"""The views of the sphere a panorama is searched in: rings of pinhole views, chosen by ``--views``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from piiblur.classes import CLASSES
from piiblur.projections.camera import View, directions, view_of
from piiblur.projections.sphere_geometry import Equirect
from piiblur.settings import Views


@dataclass(frozen=True)
class Ring:
    pitch: float  # degrees above the horizon of every view in the ring
    count: int  # views around the ring, evenly spaced in yaw
    fov: float  # horizontal field of view of each view, degrees
    fov_v: float = 0.0  # vertical field of view; 0 = same as fov
    density: float = 1.0  # pixels per degree, as a share of the panorama's at the equator
    classes: tuple[str, ...] = CLASSES
    yaw_offset: float = 0.0
    roll: float = 0.0  # degrees every view's camera is turned about its axis (what it sees turns the other way)
    seeded: bool = False  # searched only around seeds (see SEED_SCORE), not whole
    # Where a class is searched in each view, when not the whole view: (class, lowest, highest) angle in
    # degrees above the view's centre row; another ring's views search the rest of the sphere for it.
    spans: tuple[tuple[str, float, float], ...] = ()


SPAN_GRID = 32  # a span's rows start and end on the nets' coarsest stride


class Search(NamedTuple):
    """One view of a set: what is looked for in it, and where."""

    view: View
    classes: tuple[str, ...]
    spans: tuple[tuple[str, float, float], ...] = ()

    def rows(self, name: str) -> tuple[int, int]:
        """The rows (top, bottom) of the view searched for class ``name``: its ``spans`` on the 32-pixel
        grid, or every row."""
        view = self.view
        for span_class, lowest, highest in self.spans:
            if span_class == name:
                top = max(0, int(_row_at(view, highest)) // SPAN_GRID * SPAN_GRID)
                bottom = -(-math.ceil(_row_at(view, lowest)) // SPAN_GRID) * SPAN_GRID
                return top, max(top + SPAN_GRID, min(view.height, bottom))
        return 0, view.height


def _row_at(view: View, angle: float) -> float:
    """The row of ``view`` that lies ``angle`` degrees above its centre row."""
    return view.height / 2 - view.focal * math.tan(math.radians(max(-89.0, min(89.0, angle))))


# The views of a seeded ring are searched only around "seeds": every find of the ring's classes that the
# other views make scoring SEED_SCORE or more, far under any threshold, with SEED_MARGIN pixels of the view
# around it each side (on the net's 32-pixel grid). A plate that the band or a turned view finds leaves such
# a trace in the upright views at the panorama's density: on the dev half of the projected panoramas the
# seeded rings find the same 225 of 228 plates as whole ones (benchmarks/plates.py --views), searching a
# sixth of their pixels in a busy street panorama (figures: README).
SEED_SCORE = 0.001
SEED_MARGIN = 192


def band_ring(top: float, bottom: float, count: int, overlap: float, density: float = 2.0,
              classes: tuple[str, ...] = ("plate",), seeded: bool = True) -> Ring:
    """A ring of ``count`` views that covers every direction with pitch in [bottom, top] all round.

    The views look at the band's middle pitch; each holds its own share of yaw plus ``overlap / 2``
    degrees of each neighbour's at every pitch of the band, with the fields of view computed for
    that (a view pitched off the horizon sees less of the band at its left and right edges).
    """
    pitch = (top + bottom) / 2
    half = 180.0 / count + overlap / 2
    yaw, pit = np.meshgrid(np.linspace(-half, half, 33), np.linspace(bottom, top, 17))
    cam = directions(yaw, pit) @ View(0.0, pitch, 2, 2, 1.0).axes
    x, y = cam[..., 0] / cam[..., 2], cam[..., 1] / cam[..., 2]
    fov = 2 * math.degrees(math.atan(float(np.abs(x).max())))
    fov_v = 2 * math.degrees(math.atan(float(np.abs(y).max())))
    return Ring(pitch, count, fov, fov_v, density, classes, seeded=seeded)


# Where faces are searched in the views of the horizon ring (up to HORIZON_FACES degrees above and below
# their centre, where plates are searched in all 64 degrees for the cars beside the camera) and of the
# rings at +-45 degrees (from their edge nearer the horizon to POLEWARD_FACES beyond their centre; further
# out the rings at +-75 search them). A face up to 8 degrees across still lies whole in the searched rows
# of a view at the panorama's density, as in whole views (tests/test_view_spans.py); a larger one is found
# in the coarse views, as before. The face net is given a sixth fewer pixels (figures: README, "Speed").
HORIZON_FACES, POLEWARD_FACES = 28.0, 15.0
FACE_SPANS = {0: (("face", -HORIZON_FACES, HORIZON_FACES),),
              45: (("face", -90.0, POLEWARD_FACES),),
              -45: (("face", -POLEWARD_FACES, 90.0),)}

# The rings at +-75 degrees reach 15 degrees past the poles, where their views see the far side of the
# sphere upside down, which the face net cannot use: faces are searched to PAST_POLE degrees beyond the
# pole. Every direction near a pole is on the near side of one of the ring's views, and a face up to 8
# degrees across still lies whole in one view (tests/test_view_spans.py). Plates keep the whole view: cut
# so, the ring lost a synthetic plate 71 degrees down (benchmarks/panorama.py), and they cost little there.
PAST_POLE = 5.0


def to_pole(pitch: float, classes: tuple[str, ...]) -> tuple[tuple[str, float, float], ...]:
    """The spans of a view pitched at ``pitch`` that stop ``PAST_POLE`` degrees past the pole it looks at."""
    beyond = 90.0 - abs(pitch) + PAST_POLE  # degrees from the view's centre row to the end of the span
    return tuple((name, -90.0, beyond) if pitch > 0 else (name, -beyond, 90.0) for name in classes)


# Plates of cars 9-20 m away score under the threshold at the panorama's density and over it at twice
# that: they are looked for again in a band just around and under the horizon (figures: README).
PLATE_BAND = band_ring(3.0, -12.0, 12, 3.0)

# A plate seen from above and from the side is turned in an upright view, and the plate net, trained on
# level plates, misses most of those turned by 20 degrees or more: where the cars beside the camera are
# seen, 17.5 to 57.5 degrees down (under the horizon ring's views), plates are looked for again in views
# turned 20 degrees each way (training/README.md, "roll"; chosen on benchmarks/plates.py, figures: README).
TURNED_PLATES = tuple(Ring(-37.5, 8, 55, fov_v=40, yaw_offset=22.5, roll=roll, classes=("plate",), seeded=True)
                      for roll in (20.0, -20.0))

# Views 55-64 degrees wide overlapping by 8 or more, at the panorama's density; rings at 75 degrees show
# a face near a pole upright in one of their views; coarse views catch what is too big for the overlap.
# Chosen on benchmarks/panorama.py: the README gives the figures.
# Faces are searched in less of the horizon's and the 45-degree rings' views than plates (FACE_SPANS).
_STANDARD_NOBAND = (
    Ring(0, 8, 55, fov_v=64, spans=FACE_SPANS[0]),
    Ring(45, 8, 55, classes=("face",), yaw_offset=22.5, spans=FACE_SPANS[45]),
    Ring(-45, 8, 55, yaw_offset=22.5, spans=FACE_SPANS[-45]),
    Ring(75, 5, 60, classes=("face",), spans=to_pole(75, ("face",))),
    Ring(-75, 5, 60, yaw_offset=36, spans=to_pole(-75, ("face",))),
    Ring(0, 4, 100, density=0.25),
    Ring(90, 1, 100, density=0.25),
    Ring(-90, 1, 100, density=0.25),
)
VIEW_SETS: dict[Views, tuple[Ring, ...]] = {
    Views.STANDARD: (*_STANDARD_NOBAND, PLATE_BAND, *TURNED_PLATES),
    Views.FAST: (  # above the horizon ring only the coarse views: for surveys where nobody is above the camera
        Ring(0, 8, 55, fov_v=64),
        Ring(-45, 8, 55, yaw_offset=22.5),
        Ring(-75, 5, 60, yaw_offset=36, spans=to_pole(-75, ("face",))),
        Ring(0, 4, 100, density=0.25),
        Ring(90, 1, 100, density=0.25),
        *TURNED_PLATES,  # below the horizon: dev half of the projected panoramas 217 -> 222 of 228 plates
    ),
    Views.STANDARD_NOBAND: _STANDARD_NOBAND,  # for comparison, and for the least time
}
# the standard views with the seeded rings searched whole: for comparison, and for the most search
VIEW_SETS[Views.THOROUGH] = tuple(replace(ring, seeded=False) for ring in VIEW_SETS[Views.STANDARD])


def views_for(geo: Equirect, view_set: str = Views.STANDARD, seeded: bool | None = None) -> list[Search]:
    """The views (and the classes looked for in each, and where) that cover the image's part of the
    sphere: of every ring, or of the seeded rings only (``seeded`` True) or the others only (False)."""
    chosen: list[Search] = []
    for ring in VIEW_SETS[view_set]:
        if seeded is not None and ring.seeded != seeded:
            continue
        for i in range(ring.count):
            yaw = (ring.yaw_offset + i * 360.0 / ring.count + 180) % 360 - 180
            if geo.covers(yaw, ring.pitch, ring.fov / 2):
                view = view_of(yaw, ring.pitch, ring.fov, geo.focal * ring.density, roll=ring.roll,
                               fov_v=ring.fov_v)
                chosen.append(Search(view, ring.classes, ring.spans))
    return chosen
