"""The plate band: views at twice the panorama's density around the horizon, for small distant plates."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import EXAMPLE, PLATE_BOX
from PIL import Image

from piiblur import sphere
from piiblur import synthetic as syn
from piiblur.detections import Detections
from piiblur.pipeline import Blurrer, Settings

BAND_SET = "standard"
NO_BAND = "standard-noband"


def _band_views(geo: sphere.Equirect) -> list[sphere.View]:
    band = sphere.PLATE_BAND
    return [v for v, classes, _ in sphere.views_for(geo, BAND_SET)
            if classes == band.classes and v.pitch == band.pitch and v.focal == pytest.approx(geo.focal * band.density)]


@pytest.mark.parametrize("top, bottom, count, overlap", [(3.0, -12.0, 12, 3.0), (3.0, -12.0, 8, 2.0),
                                                         (5.0, -20.0, 6, 4.0)])
def test_a_band_ring_holds_every_direction_of_its_band_with_the_overlap(top, bottom, count, overlap):
    ring = sphere.band_ring(top, bottom, count, overlap)
    geo = sphere.Equirect(4000, 2000, 4000, 2000)
    rng = np.random.default_rng(1)
    yaw, pitch = rng.uniform(-180, 180, 4000), rng.uniform(bottom, top, 4000)
    vecs = sphere.directions(yaw, pitch)
    # the neighbourhood of each direction (overlap / 2 degrees either side in yaw) lies whole in one view
    left, right = sphere.directions(yaw - overlap / 2 * 0.99, pitch), sphere.directions(yaw + overlap / 2 * 0.99, pitch)
    held = np.zeros(len(yaw), bool)
    for i in range(ring.count):
        view = sphere.view_of(i * 360.0 / ring.count, ring.pitch, ring.fov, geo.focal, fov_v=ring.fov_v)
        inside = np.ones(len(yaw), bool)
        for v in (vecs, left, right):
            u, w, front = view.project(v)
            inside &= front & (u >= 0) & (u <= view.width) & (w >= 0) & (w <= view.height)
        held |= inside
    assert held.all()


def test_the_plate_band_is_searched_for_plates_only_at_twice_the_density():
    geo = sphere.Equirect(8000, 4000, 8000, 4000)
    band = _band_views(geo)
    assert len(band) == sphere.PLATE_BAND.count
    assert sphere.PLATE_BAND.classes == ("plate",) and sphere.PLATE_BAND.density == 2.0
    ring = sphere.PLATE_BAND
    assert ring.pitch + ring.fov_v / 2 >= 3.0 and ring.pitch - ring.fov_v / 2 <= -12.0
    assert ring.fov_v <= 15.0 + 2  # the views hold the band and little more
    # a degree of the band spans twice the pixels it spans in the panorama
    v = band[0]
    du = v.project(sphere.directions(np.array([v.yaw - 0.5, v.yaw + 0.5]), np.array([v.pitch, v.pitch])))[0]
    assert float(du[1] - du[0]) == pytest.approx(2 * geo.width / 360, rel=0.01)
    plain = {(v.yaw, v.pitch, v.focal) for v, _, _ in sphere.views_for(geo, NO_BAND)}
    assert not any((v.yaw, v.pitch, v.focal) in plain for v in band)


def test_a_find_in_a_band_view_maps_back_to_its_place_on_the_panorama():
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    view = _band_views(geo)[3]
    target = sphere.directions(np.array(view.yaw + 7.0), np.array(-6.0))
    u, v, front = view.project(target)
    assert front
    box = Detections.of_class(np.array([[u - 20, v - 5, u + 20, v + 5]], np.float32), np.array([0.6]), "plate")
    placed = sphere.to_sphere(box, view, geo)
    yaw, pitch, _, ang_h = (float(a) for a in placed.places[0])
    assert yaw == pytest.approx(view.yaw + 7.0, abs=0.05) and pitch == pytest.approx(-6.0, abs=0.05)
    # 10 view pixels at twice the density are about 5 panorama pixels
    assert ang_h * geo.height / 180 == pytest.approx(5.0, rel=0.1)
    x, y = geo.to_pixels(np.array(view.yaw + 7.0), np.array(-6.0))
    x1, y1, x2, y2 = placed.xyxy[0]
    assert x1 < float(x) < x2 and y1 < float(y) < y2 and y2 - y1 == pytest.approx(5.0, rel=0.15)


@pytest.fixture(scope="module")
def small_plate_pano() -> tuple[np.ndarray, sphere.Equirect]:
    """A 1000x500 panorama with a real plate 10 px tall (at the panorama's density) 6 degrees under the horizon."""
    geo = sphere.Equirect(1000, 500, 1000, 500)
    pano = np.full((geo.height, geo.width, 3), 110, np.uint8)
    portrait = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    x1, y1, x2, y2 = PLATE_BOX
    crop = syn.cut(portrait, (float(x1), float(y1), float(x2), float(y2)), float(x2 - x1), 2.0 * (y2 - y1))
    syn.place(pano, geo, crop, 30.0, -6.0, 10)
    return pano, geo


def test_a_small_plate_near_the_horizon_is_found_with_the_band_and_not_without(small_plate_pano):
    pano, geo = small_plate_pano
    without = Blurrer(Settings(classes=("plate",), threads=2, views=NO_BAND)).detect(pano, geo)
    assert len(without) == 0
    found = Blurrer(Settings(classes=("plate",), threads=2, views=BAND_SET)).detect(pano, geo)
    assert len(found) == 1
    yaw, pitch, _, _ = (float(a) for a in found.places[0])
    assert yaw == pytest.approx(30.0, abs=1.0) and pitch == pytest.approx(-6.0, abs=1.0)
