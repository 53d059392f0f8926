"""Seeded rings (the plate band and the turned plate views): searched only in
windows around what the other views found, however faintly, and finding there what a whole search finds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import turned_plate_panorama

from piiblur import sphere
from piiblur.detections import Detections
from piiblur.pipeline import Blurrer, Settings
from piiblur.projections.sphere_detect import SEED_GRID, detect_sphere, seed_windows
from piiblur.projections.sphere_geometry import RingRenderer
from piiblur.projections.view_sets import SEED_MARGIN, TURNED_PLATES, VIEW_SETS


def _seeds(yaw: np.ndarray, pitch: np.ndarray) -> Detections:
    n = len(yaw)
    places = np.stack([yaw, pitch, np.ones(n), np.ones(n)], axis=1)
    return Detections(np.zeros((n, 4), np.float32), np.full(n, 0.01, np.float32), np.ones(n, int), places,
                      tuple(np.zeros((4, 2), np.float32) for _ in range(n)))


def test_windows_hold_the_margin_round_every_seed_on_the_nets_grid_and_nothing_without_one():
    geo = sphere.Equirect(8000, 4000, 8000, 4000)
    view = sphere.view_of(30.0, -37.5, 55, geo.focal, roll=20.0, fov_v=40)
    rng = np.random.default_rng(3)
    yaw, pitch = rng.uniform(15, 45, 6), rng.uniform(-50, -25, 6)
    windows = seed_windows(view, _seeds(yaw, pitch))
    assert windows and all(0 <= x0 < x1 <= view.width and 0 <= y0 < y1 <= view.height for x0, y0, x1, y1 in windows)
    for x0, y0, x1, y1 in windows:  # on the grid (or the view's edge), and apart from each other
        assert x0 % SEED_GRID == 0 and y0 % SEED_GRID == 0
        assert x1 % SEED_GRID == 0 or x1 == view.width
        assert y1 % SEED_GRID == 0 or y1 == view.height
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    u, v, front = view.project(sphere.directions(yaw, pitch))
    for x, y in zip(u[front], v[front], strict=True):
        if 0 <= x < view.width and 0 <= y < view.height:
            need = (max(0, x - SEED_MARGIN), max(0, y - SEED_MARGIN),
                    min(view.width, x + SEED_MARGIN), min(view.height, y + SEED_MARGIN))
            assert any(w[0] <= need[0] and w[1] <= need[1] and need[2] <= w[2] and need[3] <= w[3] for w in windows)
    # a seed too large for the margin gets a window that holds it whole, with context round it
    big = _seeds(np.array([30.0]), np.array([-37.5]))
    big.places[:, 2:] = 20.0  # degrees: about 450 px in this view, more than twice the margin
    (x0, y0, x1, y1), = seed_windows(view, big)
    extent = view.focal * np.tan(np.radians(10.0))
    assert x1 - x0 >= 2 * extent + SEED_MARGIN / 2 and y1 - y0 >= 2 * extent + SEED_MARGIN / 2
    # seeds behind the view or outside it: no window; seeds everywhere: the whole view
    assert seed_windows(view, _seeds(np.array([-150.0, 30.0]), np.array([-37.5, 40.0]))) == []
    grid_yaw, grid_pitch = np.meshgrid(np.linspace(8, 52, 12), np.linspace(-55, -20, 8))
    assert seed_windows(view, _seeds(grid_yaw.ravel(), grid_pitch.ravel())) == [(0, 0, view.width, view.height)]


def test_a_window_is_rendered_as_that_part_of_the_whole_view_across_the_seam():
    rng = np.random.default_rng(0)
    pano = cv2.resize(rng.integers(0, 255, (250, 500, 3), dtype=np.uint8), (2000, 1000), interpolation=cv2.INTER_CUBIC)
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    renderer = RingRenderer(pano, geo)
    for view in (sphere.view_of(175.0, -37.5, 55, geo.focal, roll=-20.0, fov_v=40),
                 sphere.view_of(-100.0, -75.0, 60, geo.focal)):
        whole = renderer.render(view)
        for window in ((0, 0, 64, 96), (128, 32, view.width, view.height)):
            x0, y0, x1, y1 = window
            assert np.array_equal(renderer.render(view, window), whole[y0:y1, x0:x1])


class Counting:
    """A detector that counts the pixels it is given."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.class_name, self.pixels = inner, inner.class_name, 0

    def detect(self, picture: np.ndarray, threshold: float) -> Detections:
        self.pixels += picture.shape[0] * picture.shape[1]
        return self.inner.detect(picture, threshold)


@pytest.fixture(scope="module")
def plate_net():  # type: ignore[no-untyped-def]
    return Blurrer(Settings(classes=("plate",), threads=2)).detectors[0]


def _plate_pixels(geo: sphere.Equirect, view_set: str, seeded: bool | None) -> int:
    """The pixels of the set's views that the plate net is given (the rows searched for plates)."""
    views = sphere.views_for(geo, view_set, seeded=seeded)
    return sum(one.view.width * (one.rows("plate")[1] - one.rows("plate")[0]) for one in views
               if "plate" in one.classes)


def test_with_nothing_to_seed_them_the_seeded_rings_are_not_searched(plate_net):
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    counting = Counting(plate_net)
    found = detect_sphere(np.full((geo.height, geo.width, 3), 110, np.uint8), geo, [counting], {"plate": 0.125})
    assert len(found) == 0
    assert 0 < counting.pixels <= _plate_pixels(geo, "standard", seeded=False) < _plate_pixels(geo, "thorough", None)


@pytest.mark.parametrize("turn", [45.0, -35.0])
def test_a_turned_plate_is_found_in_a_window_as_in_the_whole_turned_views(plate_net, turn: float):
    pano, geo = turned_plate_panorama(turn)
    seeded, whole = Counting(plate_net), Counting(plate_net)
    by_windows = detect_sphere(pano, geo, [seeded], {"plate": 0.125}, "standard")
    by_views = detect_sphere(pano, geo, [whole], {"plate": 0.125}, "thorough")
    assert len(by_views) >= 1 and len(by_windows) == len(by_views)  # found either way, once
    assert np.allclose(np.sort(by_windows.places[:, :2], axis=0), np.sort(by_views.places[:, :2], axis=0), atol=0.5)
    # the turned, band and nadir plate views were given a small share of their pixels: windows
    in_windows = seeded.pixels - _plate_pixels(geo, "standard", seeded=False)
    assert 0 < in_windows < 0.3 * _plate_pixels(geo, "standard", seeded=True)
    assert whole.pixels == _plate_pixels(geo, "thorough", seeded=None)


def test_on_a_gpu_the_seeded_rings_are_searched_whole(plate_net):
    # every window has its own shape, and each new shape costs cuDNN an algorithm search
    pano, geo = turned_plate_panorama(45.0)
    gpu = Counting(plate_net)
    gpu.on_gpu = True
    found = detect_sphere(pano, geo, [gpu], {"plate": 0.125}, "standard")
    assert gpu.pixels == _plate_pixels(geo, "thorough", seeded=None) and len(found) >= 1
    assert plate_net.on_gpu is False  # the CPU session here


def test_the_thorough_set_is_the_standard_set_with_every_ring_searched_whole():
    standard, thorough = VIEW_SETS["standard"], VIEW_SETS["thorough"]
    assert [r.pitch for r in standard] == [r.pitch for r in thorough] and not any(r.seeded for r in thorough)
    assert all(r.seeded for r in TURNED_PLATES) and sphere.PLATE_BAND.seeded
    # what the seeded rings look for: plates only, never faces (a face is never left to a seed)
    assert {c for r in standard if r.seeded for c in r.classes} == {"plate"}
