"""Plates seen from above and from the side are turned in an upright view: 17.5 to 57.5 degrees down they
are looked for again in views turned 20 degrees each way."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import turned_plate_panorama

from piiblur import sphere
from piiblur.pipeline import Blurrer, Settings
from piiblur.projections.view_sets import TURNED_PLATES


def test_the_standard_views_look_down_for_plates_turned_both_ways():
    geo = sphere.Equirect(4000, 2000, 4000, 2000)
    views = sphere.views_for(geo, "standard")
    level = sorted(v.yaw for v, classes, _ in views if v.pitch == -45 and v.roll == 0 and "plate" in classes)
    assert len(level) == 8
    for roll in (20.0, -20.0):
        turned = [(v, classes) for v, classes, _ in views if v.roll == roll]
        assert {classes for _, classes in turned} == {("plate",)}  # faces are not looked for again
        assert sorted(v.yaw for v, _ in turned) == level and all(v.focal == geo.focal for v, _ in turned)
        # from 17.5 to 57.5 degrees down: under the horizon ring, where the cars beside the camera are
        for v, _ in turned:
            edges = v.rays(np.array([v.width / 2, v.width / 2]), np.array([0.0, float(v.height)]))
            top, bottom = sphere.angles(edges)[1]
            assert float(top) == pytest.approx(-17.5, abs=4) and float(bottom) == pytest.approx(-57.5, abs=4)
    assert {r.roll for r in TURNED_PLATES} == {20.0, -20.0}
    # the fast set keeps them (they look below the horizon); the set without the band has neither
    assert sum(v.roll != 0 for v, _, _ in sphere.views_for(geo, "fast")) == 16
    assert all(v.roll == 0 for v, _, _ in sphere.views_for(geo, "standard-noband"))


def test_a_turned_view_shows_the_level_view_turned_the_other_way():
    rng = np.random.default_rng(0)
    pano = cv2.resize(rng.integers(0, 255, (250, 500, 3), dtype=np.uint8), (2000, 1000), interpolation=cv2.INTER_CUBIC)
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    level = sphere.render(pano, geo, sphere.view_of(30, -45, 55, geo.focal))
    turned = sphere.render(pano, geo, sphere.view_of(30, -45, 55, geo.focal, roll=20))
    h, w = level.shape[:2]
    middle = slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4)

    def difference(angle: float) -> float:
        rotated = cv2.warpAffine(level, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h))
        return float(np.abs(rotated[middle].astype(int) - turned[middle].astype(int)).mean())

    # a camera turned by +20 degrees sees the picture turned 20 degrees clockwise (OpenCV's angle -20)
    assert difference(-20) < 0.25 * min(difference(20), difference(0))


@pytest.mark.parametrize("turn", [45.0, -35.0])
def test_a_turned_plate_seen_from_above_is_found_with_the_turned_views_and_not_without(turn: float):
    pano, geo = turned_plate_panorama(turn)  # 40 degrees down, 20 px tall at the panorama's density

    level_only = Blurrer(Settings(classes=("plate",), threads=2, views="standard-noband")).detect(pano, geo)
    assert len(level_only) == 0
    found = Blurrer(Settings(classes=("plate",), threads=2, views="standard")).detect(pano, geo)
    assert len(found) >= 1
    for yaw, pitch, _, _ in found.places:
        assert float(yaw) == pytest.approx(40.0, abs=2.0) and float(pitch) == pytest.approx(-40.0, abs=2.0)
