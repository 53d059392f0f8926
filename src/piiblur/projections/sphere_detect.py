"""Detection on the sphere: every view of the set searched, boxes mapped back as outlines, duplicates merged.

A doubtful find (under its class's threshold) is kept only when a closer look agrees (``confirm``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

from piiblur.detections import CLASSES, Detections
from piiblur.detectors import Detector
from piiblur.projections.camera import View, angles, directions, view_of
from piiblur.projections.sphere_geometry import Equirect, RingRenderer, render, unwrapped
from piiblur.projections.view_sets import SEED_MARGIN, SEED_SCORE, Search, views_for

OUTLINE_STEPS = 6  # points per box side when a box is projected back to the panorama


# Views of one ring (one shape) given to a net in one run. 1: one view per run, the default on the
# CPU, where batching was measured no faster (README, "Speed"); more: one batch per ring, in chunks
# of this many views (a GPU's way). Either finds the same (tests/test_batched_views.py).
BATCH_VIEWS = max(1, int(os.environ.get("PIIBLUR_BATCH_VIEWS", "1")))


def detect_sphere(rgb: np.ndarray, geo: Equirect, detectors: list[Detector], thresholds: dict[str, float],
                  view_set: str = "standard", batch: int | None = None) -> Detections:
    """Detect in every view of the set and map each box back to the panorama.

    Each ring's maps are computed once (``RingRenderer``); a view searched for both classes is
    rendered once for both nets; ``batch`` views of a ring go through a net in one run. The views of
    seeded rings are searched last, only around the seeds that the others found (``SEED_SCORE``)."""
    renderer = RingRenderer(rgb, geo)
    # on a GPU the seeded rings are searched whole: each window's shape would cost cuDNN a new algorithm
    # search (50 ms to over a second, README "The GPU path"), and pixels are cheap there
    by_windows = not any(getattr(d, "on_gpu", False) for d in detectors)
    seeded_views = views_for(geo, view_set, seeded=True) if by_windows else []
    seeded = {name for one in seeded_views for name in one.classes}
    seeded_ids = [CLASSES.index(name) for name in seeded]
    search = {n: min(t, SEED_SCORE) if n in seeded else t for n, t in thresholds.items()}
    found: list[Detections] = []
    cut: list[np.ndarray] = []
    seeds: list[Detections] = []
    for group in _groups(views_for(geo, view_set, seeded=False if by_windows else None), batch or BATCH_VIEWS):
        wanted = [d for d in detectors if d.class_name in group[0].classes]
        if not wanted:
            continue
        # a view is one detector input: it is already at the right scale, so no tile pyramid; each net is
        # given the rows of it where its class is searched, and only the rows some net is given are rendered
        spans = [group[0].rows(d.class_name) for d in wanted]
        first, last = min(top for top, _ in spans), max(bottom for _, bottom in spans)
        pictures = [renderer.render(one.view, None if (first, last) == (0, one.view.height)
                                    else (0, first, one.view.width, last)) for one in group]
        per_view: list[list[tuple[Detections, np.ndarray]]] = [[] for _ in group]
        for detector, (top, bottom) in zip(wanted, spans, strict=True):
            in_rows = _detect_many(detector, [p[top - first : bottom - first] for p in pictures],
                                   search[detector.class_name])
            for parts, one, dets in zip(per_view, group, in_rows, strict=True):
                parts.append((dets.shifted(0, top), dets.touching(one.view.width, bottom - top)))
        for one, parts in zip(group, per_view, strict=True):
            view, dets = one.view, Detections.merge(d for d, _ in parts)
            if not len(dets):
                continue
            edge = np.concatenate([c for d, c in parts if len(d)])  # cut by the edge of the rows searched
            placed = to_sphere(dets, view, geo)
            if seeded:  # every find of a seeded class is a seed; those over the threshold are finds too
                seeds.append(placed[np.isin(placed.class_ids, seeded_ids)])
                sure = dets.scores >= np.array([thresholds[CLASSES[c]] for c in dets.class_ids])
                dets, placed, edge = dets[sure], placed[sure], edge[sure]
            if len(dets):
                found.append(placed)
                cut.append(edge)
    all_seeds = Detections.merge(seeds)
    for view, classes, _ in seeded_views:
        wanted = [d for d in detectors if d.class_name in classes]
        mine = all_seeds[np.isin(all_seeds.class_ids, [CLASSES.index(c) for c in classes])]
        for x0, y0, x1, y1 in seed_windows(view, mine) if wanted else []:
            window = renderer.render(view, (x0, y0, x1, y1))
            dets = Detections.merge([d.detect(window, thresholds[d.class_name]) for d in wanted])
            if len(dets):
                found.append(to_sphere(dets.shifted(x0, y0), view, geo))
                cut.append(dets.touching(x1 - x0, y1 - y0))  # a window's edge cuts as a view's does
    return deduplicate_on_sphere(Detections.merge(found), np.concatenate(cut) if cut else None)


SEED_GRID = 32  # windows start and end on the nets' coarsest stride, as the view's own grid


def seed_windows(view: View, seeds: Detections) -> list[tuple[int, int, int, int]]:
    """The parts of ``view`` (x0, y0, x1, y1) to search: ``SEED_MARGIN`` pixels each side of every seed
    in it (more for a seed so large that it would not fit: half its size and a quarter of the margin), on
    the 32-pixel grid, overlapping parts merged; the whole view where they would cover most of it."""
    if not len(seeds) or seeds.places is None:
        return []
    u, v, front = view.project(directions(seeds.places[:, 0], seeds.places[:, 1]))
    inside = front & (u >= 0) & (u < view.width) & (v >= 0) & (v < view.height)
    half_size = view.focal * np.tan(np.radians(np.maximum(seeds.places[:, 2], seeds.places[:, 3])) / 2)
    reach = np.maximum(SEED_MARGIN, half_size + SEED_MARGIN / 4)
    g = SEED_GRID
    windows = [(max(0, int(x - r) // g * g), max(0, int(y - r) // g * g),
                min(view.width, -(-int(x + r) // g) * g), min(view.height, -(-int(y + r) // g) * g))
               for x, y, r in zip(u[inside], v[inside], reach[inside], strict=True)]
    merged: list[tuple[int, int, int, int]] = []
    while windows:
        a = windows.pop()
        for k, b in enumerate(merged):
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:  # overlapping: merge, look again
                windows.append((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
                del merged[k]
                break
        else:
            merged.append(a)
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merged) > 0.7 * view.width * view.height:
        return [(0, 0, view.width, view.height)]
    return merged


def _groups(views: list[Search], batch: int) -> Iterator[list[Search]]:
    """Consecutive views of one shape, one set of classes and spans, at most ``batch`` at a time, in order."""
    group: list[Search] = []
    for one in views:
        if group and (len(group) >= batch or one.classes != group[0].classes or one.spans != group[0].spans
                      or (one.view.width, one.view.height) != (group[0].view.width, group[0].view.height)):
            yield group
            group = []
        group.append(one)
    if group:
        yield group


def _detect_many(detector: Detector, pictures: list[np.ndarray], threshold: float) -> list[Detections]:
    many = getattr(detector, "detect_many", None)
    if many is None or len(pictures) == 1:
        return [detector.detect(picture, threshold) for picture in pictures]
    return many(pictures, threshold)


CONFIRM_ZOOM = 2.0  # a doubtful face is looked at again at twice the panorama's density
CONFIRM_CONTEXT = 5.0  # in a view this many times its size
# Doubtful finds of a class smaller than this (pixels tall at the panorama's density) are kept without a
# closer look. A face of a few pixels holds no more detail in a zoomed view, and real faces there, most
# of them seen from the side, fail the look as often as texture does: in a street panorama of pano360 the
# look dropped about 14 passers-by's faces 11-24 px tall. Kept, they cost some false blur of the same size
# (chains, bicycle parts, fences). Under 32 px the face net itself is unsure (synthetic faces of 16 px:
# 80% found); figures: README "Panoramas".
KEPT_UNLOOKED_BELOW = {"face": 32.0}


def confirm(rgb: np.ndarray, geo: Equirect, dets: Detections, detectors: list[Detector],
            sure: dict[str, float]) -> Detections:
    """Keep a detection scored under its class's ``sure`` threshold only if a second, closer look agrees.

    The views are searched with a lower threshold so that faces of a few pixels are not lost; each
    such doubtful find is rendered again, centred, at twice the density, and kept when the detector
    finds the same object there with a score of ``sure`` or more. Texture that merely resembles a
    face rarely survives the closer look. A doubtful find smaller than its class's
    ``KEPT_UNLOOKED_BELOW`` is kept without one: at a few pixels real faces fail it too.
    """
    if not len(dets) or dets.places is None:
        return dets
    by_class = {d.class_name: d for d in detectors}
    keep = np.ones(len(dets), bool)
    pixels_per_degree = geo.full_width / 360.0
    for i, (place, cid, score) in enumerate(zip(dets.places, dets.class_ids, dets.scores, strict=True)):
        name = CLASSES[cid]
        if name not in sure or score >= sure[name] or name not in by_class:
            continue
        yaw, pitch, ang_w, ang_h = (float(v) for v in place)
        if ang_h * pixels_per_degree < KEPT_UNLOOKED_BELOW.get(name, 0.0):
            continue
        fov = float(np.clip(CONFIRM_CONTEXT * max(ang_w, ang_h), 3.0, 90.0))
        focal = geo.focal * CONFIRM_ZOOM
        size = 2 * focal * math.tan(math.radians(fov) / 2)
        if size > 640:  # large enough already: no zoom needed, keep the view small
            focal *= 640 / size
        view = view_of(yaw, pitch, fov, focal)
        found = by_class[name].detect(render(rgb, geo, view), sure[name])
        half_w = focal * math.tan(math.radians(ang_w) / 2)
        half_h = focal * math.tan(math.radians(ang_h) / 2)
        cx, cy = view.width / 2, view.height / 2
        near = (np.abs((found.xyxy[:, 0] + found.xyxy[:, 2]) / 2 - cx) < max(half_w, 2.0)) & (
            np.abs((found.xyxy[:, 1] + found.xyxy[:, 3]) / 2 - cy) < max(half_h, 2.0))
        keep[i] = bool(near.any())
    return dets[keep]


def _box_outline(x1: float, y1: float, x2: float, y2: float) -> tuple[np.ndarray, np.ndarray]:
    """A box's outline, clockwise from its top-left corner, ``OUTLINE_STEPS`` points a side."""
    t = np.linspace(0, 1, OUTLINE_STEPS, endpoint=False)
    u = np.concatenate([x1 + (x2 - x1) * t, np.full_like(t, x2), x2 - (x2 - x1) * t, np.full_like(t, x1)])
    v = np.concatenate([np.full_like(t, y1), y1 + (y2 - y1) * t, np.full_like(t, y2), y2 - (y2 - y1) * t])
    return u, v


def to_sphere(dets: Detections, view: View, geo: Equirect) -> Detections:
    """Boxes in a view as outlines and places on the panorama."""
    outlines, places, boxes = [], [], []
    for x1, y1, x2, y2 in dets.xyxy:
        u, v = _box_outline(x1, y1, x2, y2)
        yaw, pitch = angles(view.rays(u, v))
        x, y = geo.to_pixels(yaw, pitch)
        x = unwrapped(x, geo.full_width)
        outline = np.stack([x, y], axis=1).astype(np.float32)
        outlines.append(outline)
        boxes.append([x.min(), y.min(), x.max(), y.max()])
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
        mid = view.rays(np.array([x1, x2, cx, cx, cx]), np.array([cy, cy, y1, y2, cy]))
        ang_w = math.degrees(math.acos(float(np.clip(mid[0] @ mid[1], -1, 1))))
        ang_h = math.degrees(math.acos(float(np.clip(mid[2] @ mid[3], -1, 1))))
        c_yaw, c_pitch = angles(mid[4])
        places.append([float(c_yaw), float(c_pitch), ang_w, ang_h])
    return Detections(np.array(boxes), dets.scores, dets.class_ids, np.array(places), tuple(outlines))


def from_pixels(dets: Detections, geo: Equirect) -> Detections:
    """Boxes in panorama pixels (found in the flat picture) as outlines and places on the panorama: the
    outline is the box itself, the place its centre and the angles between its sides' midpoints."""
    outlines, places = [], []
    for x1, y1, x2, y2 in dets.xyxy:
        x, y = _box_outline(x1, y1, x2, y2)
        outlines.append(np.stack([x, y], axis=1).astype(np.float32))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        yaw, pitch = geo.to_angles(np.array([x1, x2, cx, cx, cx]), np.array([cy, cy, y1, y2, cy]))
        mid = directions(yaw, pitch)
        ang_w = math.degrees(math.acos(float(np.clip(mid[0] @ mid[1], -1, 1))))
        ang_h = math.degrees(math.acos(float(np.clip(mid[2] @ mid[3], -1, 1))))
        places.append([float((yaw[4] + 180.0) % 360.0 - 180.0), float(pitch[4]), ang_w, ang_h])
    places_array = np.array(places, np.float32).reshape(-1, 4)
    return Detections(dets.xyxy, dets.scores, dets.class_ids, places_array, tuple(outlines))


def deduplicate_on_sphere(dets: Detections, cut: np.ndarray | None = None, iou: float = 0.4,
                          containment: float = 0.75) -> Detections:
    """Non-maximum suppression on the sphere: boxes compared in the tangent plane of the better one.

    Better means whole first, then higher scoring: a find ``cut`` by its view's edge may be only part
    of the object and may outscore the whole object seen in another view; kept, it would leave the
    rest of the object unblurred. It is kept only where no whole find of the object overlaps it."""
    if len(dets) < 2 or dets.places is None:
        return dets
    keep: list[int] = []
    order = np.lexsort((-dets.scores, np.zeros(len(dets), bool) if cut is None else cut))
    vecs = directions(dets.places[:, 0], dets.places[:, 1])
    suppressed = np.zeros(len(dets), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        others = np.flatnonzero(~suppressed & (dets.class_ids == dets.class_ids[i]))
        others = others[others != i]
        if not others.size:
            continue
        view = View(float(dets.places[i, 0]), float(dets.places[i, 1]), 2, 2, 1.0)
        u, v, front = view.project(vecs[others])
        du, dv = np.degrees(np.arctan(u - 1)), np.degrees(np.arctan(1 - v))  # offsets in degrees
        wi, hi = dets.places[i, 2], dets.places[i, 3]
        wo, ho = dets.places[others, 2], dets.places[others, 3]
        ix = np.maximum(0, np.minimum(wi / 2, du + wo / 2) - np.maximum(-wi / 2, du - wo / 2))
        iy = np.maximum(0, np.minimum(hi / 2, dv + ho / 2) - np.maximum(-hi / 2, dv - ho / 2))
        inter = ix * iy
        union = wi * hi + wo * ho - inter
        drop = front & ((inter / np.maximum(union, 1e-9) >= iou) | (inter / np.maximum(wo * ho, 1e-9) >= containment))
        suppressed[others[drop]] = True
    return dets[np.sort(np.array(keep))]
