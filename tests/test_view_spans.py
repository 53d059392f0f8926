"""Faces searched in part of some views (``Ring.spans``): the rows searched, the sphere still covered, the
search itself given only those rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from piiblur import sphere
from piiblur.detections import Detections
from piiblur.projections import sphere_detect
from piiblur.projections.view_sets import HORIZON_FACES, PAST_POLE, POLEWARD_FACES, SPAN_GRID
from piiblur.settings import Views


def test_the_rows_of_a_span_are_those_of_its_angles_on_the_grid():
    geo = sphere.Equirect(8000, 4000, 8000, 4000)
    spanned = [s for s in sphere.views_for(geo, Views.STANDARD) if s.spans]
    assert {s.view.pitch for s in spanned} == {0.0, 45.0, -45.0, 75.0, -75.0}
    beyond_pole = 90.0 - 75.0 + PAST_POLE
    expected = {0.0: {"face": (HORIZON_FACES, -HORIZON_FACES)}, 45.0: {"face": (POLEWARD_FACES, None)},
                -45.0: {"face": (None, -POLEWARD_FACES)}, 75.0: {"face": (beyond_pole, None)},
                -75.0: {"face": (None, -beyond_pole)}}
    for one in spanned:
        view = one.view
        for name in one.classes:
            top, bottom = one.rows(name)
            if name not in expected[view.pitch]:
                assert (top, bottom) == (0, view.height)  # searched whole
                continue
            assert top % SPAN_GRID == 0 and (bottom % SPAN_GRID == 0 or bottom == view.height)
            assert 0 < bottom - top < 0.9 * view.height  # a saving
            # the edges are the span's angles above the view's centre row, give or take the grid
            for row, angle in zip((top, bottom), expected[view.pitch][name], strict=True):
                if angle is None:  # this side of the view is searched to its edge
                    assert row in (0, view.height)
                    continue
                at = math.degrees(math.atan((view.height / 2 - row) / view.focal))
                assert abs(at - angle) < math.degrees(SPAN_GRID / view.focal) + 0.01
    # past its pole a view sees the far side upside down: a face there stands on its head
    up_view = next(s for s in spanned if s.view.pitch == 75.0)
    top, _ = up_view.rows("face")
    pole_row = up_view.view.height / 2 - up_view.view.focal * math.tan(math.radians(15.0))
    assert pole_row - top <= up_view.view.focal * math.tan(math.radians(PAST_POLE)) + SPAN_GRID


@pytest.mark.parametrize("width", [8000, 5760, 2048])
@pytest.mark.parametrize("name", ["face", "plate"])
def test_every_object_up_to_8_degrees_lies_whole_in_the_searched_rows_of_a_view_at_full_density(width: int, name: str):
    """As it did in whole views: a face of up to 8 degrees across anywhere on the sphere, and a plate anywhere
    under the horizon, lies wholly inside the rows searched for it in one view at the panorama's density
    (larger ones: the coarse views). The seeded views, searched only around seeds, do not count."""
    geo = sphere.Equirect(width, width // 2, width, width // 2)
    searches = [s for s in sphere.views_for(geo, Views.STANDARD, seeded=False)
                if name in s.classes and s.view.focal == geo.focal]
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4000, 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if name == "plate":
        centres = centres[centres[:, 1] < -0.01]
    side = np.cross(centres, [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    other = np.cross(side, centres)
    reach = math.tan(math.radians(4.0))
    rim = [centres + reach * (math.cos(a) * side + math.sin(a) * other) for a in np.linspace(0, 2 * math.pi, 16)]
    whole = np.zeros(len(centres), bool)
    for one in searches:
        top, bottom = one.rows(name)
        inside = np.ones(len(centres), bool)
        for points in [centres, *rim]:
            u, v, front = one.view.project(points / np.linalg.norm(points, axis=1, keepdims=True))
            inside &= front & (u >= 0) & (u <= one.view.width) & (v >= top) & (v <= bottom)
        whole |= inside
    assert whole.all(), f"{int((~whole).sum())} {name}s of 8 degrees cut in every view"


def test_the_face_net_is_given_only_the_rows_of_its_span_and_finds_map_back_to_the_view():
    """A recording face detector: the horizon ring's views reach it cut to the span's rows, the plate
    detector gets them whole, and a face found in the cut picture is placed where it is in the view."""
    geo = sphere.Equirect(4000, 2000, 4000, 2000)
    horizon = next(s for s in sphere.views_for(geo, Views.STANDARD) if s.view.pitch == 0 and s.spans)
    top, bottom = horizon.rows("face")
    assert top > 0 and bottom < horizon.view.height
    shapes: dict[str, set[tuple[int, int]]] = {"face": set(), "plate": set()}

    class Recording:
        def __init__(self, class_name: str) -> None:
            self.class_name = class_name

        def detect(self, picture: np.ndarray, threshold: float) -> Detections:
            shapes[self.class_name].add(picture.shape[:2])
            if self.class_name == "face" and picture.shape[:2] == (bottom - top, horizon.view.width):
                return Detections.of_class(np.array([[100.0, 0.0, 140.0, 40.0]]), np.array([0.9]), "face")
            return Detections.empty()

    found = sphere_detect.detect_sphere(np.zeros((2000, 4000, 3), np.uint8), geo,
                                        [Recording("face"), Recording("plate")], {"face": 0.5, "plate": 0.5},
                                        "standard-noband")
    assert (bottom - top, horizon.view.width) in shapes["face"]
    assert (horizon.view.height, horizon.view.width) in shapes["plate"]
    assert (horizon.view.height, horizon.view.width) not in shapes["face"]
    # the box at the top of the cut picture is at row ``top`` of the view: its centre's pitch says so
    assert len(found)
    view = horizon.view
    expected = math.degrees(math.atan2(view.height / 2 - (top + 20), math.hypot(view.focal, 120 - view.width / 2)))
    assert np.isclose(found.places[:, 1], expected, atol=0.2).all()
