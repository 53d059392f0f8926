"""The views of a panorama searched ring by ring, in batches: the same pictures and the same detections as one
view at a time."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FACE_BOX, PLATE_BOX, sky_and_ground

from piiblur import sphere
from piiblur import synthetic as syn
from piiblur.detections import Detections
from piiblur.projections import sphere_detect
from piiblur.projections.equirect import PANORAMA_THRESHOLD_SHARE
from piiblur.projections.sphere_geometry import RingRenderer
from piiblur.settings import Views


def _noise_pano(geo: sphere.Equirect) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (geo.height // 4, geo.width // 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 4, 0), 4, 1))


@pytest.mark.parametrize("views", list(Views))
def test_a_ring_rendered_once_gives_every_view_the_pixels_render_gives(views: Views):
    geo = sphere.Equirect(1200, 600, 1200, 600)
    pano = _noise_pano(geo)
    renderer = RingRenderer(pano, geo)
    for view, _, _ in sphere.views_for(geo, views):
        assert np.array_equal(renderer.render(view), sphere.render(pano, geo, view))


def test_groups_keep_the_order_and_split_at_a_new_shape_new_classes_or_the_batch_size():
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    views = sphere.views_for(geo, Views.STANDARD)
    for batch in (1, 3, 8, 100):
        groups = list(sphere_detect._groups(views, batch))
        flat = [one for group in groups for one in group]
        assert flat == views
        for group in groups:
            assert 1 <= len(group) <= batch
            assert len({(one.view.width, one.view.height, one.classes, one.spans) for one in group}) == 1
    assert len(list(sphere_detect._groups(views, 1))) == len(views)


def _one_view_at_a_time(pano: np.ndarray, geo: sphere.Equirect, detectors: list, thresholds: dict) -> Detections:
    """The search as it was before rings and batches: each view rendered alone, each net run on it alone
    (on the rows of it where its class is searched)."""
    found = []
    for one in sphere.views_for(geo, Views.STANDARD):
        view = one.view
        wanted = [d for d in detectors if d.class_name in one.classes]
        if wanted:
            picture = sphere.render(pano, geo, view)
            rows = [one.rows(d.class_name) for d in wanted]
            dets = Detections.merge(d.detect(picture[top:bottom], thresholds[d.class_name]).shifted(0, top)
                                    for d, (top, bottom) in zip(wanted, rows, strict=True))
            if len(dets):
                found.append(sphere.to_sphere(dets, view, geo))
    return sphere_detect.deduplicate_on_sphere(Detections.merge(found))


@pytest.fixture(scope="module")
def faces_and_plates_pano(portrait: np.ndarray) -> tuple[np.ndarray, sphere.Equirect]:
    """A 2000x1000 panorama with the example's face at the horizon, across the seam, 45 degrees down and near
    the zenith, and its plate under the horizon."""
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    pano = sky_and_ground(geo.height, geo.width)
    x1, y1, x2, y2 = FACE_BOX
    face = syn.cut(portrait, (float(x1), float(y1), float(x2), float(y2)), 0.4 * (x2 - x1), 0.4 * (y2 - y1))
    for yaw, pitch, size in ((20.0, 0.0, 48), (179.0, 5.0, 40), (-100.0, -45.0, 56), (60.0, 70.0, 64)):
        syn.place(pano, geo, face, yaw, pitch, size)
    x1, y1, x2, y2 = PLATE_BOX
    plate = syn.cut(portrait, (float(x1), float(y1), float(x2), float(y2)), float(x2 - x1), 2.0 * (y2 - y1))
    syn.place(pano, geo, plate, -30.0, -8.0, 24)
    return pano, geo


def _assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_allclose(a.places, b.places, atol=1e-3)


@pytest.mark.parametrize("batch", [2, 8])
def test_the_batched_path_finds_what_one_view_at_a_time_finds(blurrer, faces_and_plates_pano, batch: int):
    pano, geo = faces_and_plates_pano
    search = {name: value * PANORAMA_THRESHOLD_SHARE for name, value in blurrer.settings.thresholds.items()}
    reference = _one_view_at_a_time(pano, geo, blurrer.detectors, search)
    assert reference.count("face") >= 4 and reference.count("plate") >= 1  # something to compare
    _assert_same(sphere_detect.detect_sphere(pano, geo, blurrer.detectors, search, Views.STANDARD, batch=1), reference)
    _assert_same(sphere_detect.detect_sphere(pano, geo, blurrer.detectors, search, Views.STANDARD, batch=batch),
                 reference)
