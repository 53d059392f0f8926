"""Blur on the sphere.

For each detection a view centred on it is rendered, blurred there exactly as
in a flat photo, and projected back into the panorama's pixels, so the mask
follows the curved outline, wraps across the seam (the Gaussian takes its
neighbours from the other edge), and widens with the projection near the poles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from piiblur import blur as planar_blur
from piiblur.detections import Detections
from piiblur.projections.camera import View, angles, directions, view_of
from piiblur.projections.sphere_geometry import Equirect, render, unwrapped

BLUR_VIEW_MAX = 1400  # largest side of the view a detection is blurred in


def _blur_view(geo: Equirect, place: np.ndarray) -> View:
    """A view centred on a detection, wide enough for its mask, feather and blur context."""
    yaw, pitch, ang_w, ang_h = (float(v) for v in place)
    fov = float(np.clip(3.0 * max(ang_w, ang_h), 4.0, 150.0))
    focal = geo.focal
    if 2 * focal * math.tan(math.radians(fov) / 2) > BLUR_VIEW_MAX:
        focal = BLUR_VIEW_MAX / (2 * math.tan(math.radians(fov) / 2))
    return view_of(yaw, pitch, fov, focal)


def _box_in_view(view: View, geo: Equirect, outline: np.ndarray) -> np.ndarray:
    yaw, pitch = geo.to_angles(outline[:, 0], outline[:, 1])
    u, v, _ = view.project(directions(yaw, pitch))
    return np.array([[u.min(), v.min(), u.max(), v.max()]])


def _window(view: View, geo: Equirect, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Panorama columns and rows that the view's non-zero alpha can reach (columns may wrap)."""
    rows_any, cols_any = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows_any.size:
        return None
    u0, u1, v0, v1 = cols_any[0], cols_any[-1] + 1, rows_any[0], rows_any[-1] + 1
    n = 24
    t = np.linspace(0, 1, n)
    u = np.concatenate([u0 + (u1 - u0) * t, np.full(n, u1), u1 - (u1 - u0) * t, np.full(n, u0)])
    v = np.concatenate([np.full(n, v0), v0 + (v1 - v0) * t, np.full(n, v1), v1 - (v1 - v0) * t])
    yaw, pitch = angles(view.rays(u, v))
    x, y = geo.to_pixels(yaw, pitch)
    y_lo, y_hi = float(y.min()), float(y.max())
    pole_u, pole_v, pole_front = view.project(np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    inside = pole_front & (pole_u >= u0) & (pole_u <= u1) & (pole_v >= v0) & (pole_v <= v1)
    if inside[0]:
        y_lo = -geo.top  # north pole in the mask: every column, up to the top
    if inside[1]:
        y_hi = geo.full_height - geo.top
    if inside.any():
        x_lo, x_hi = -geo.left, geo.full_width - geo.left
    else:
        xs = unwrapped(x, geo.full_width)
        x_lo, x_hi = float(xs.min()), float(xs.max())
    rows = np.arange(max(0, math.floor(y_lo) - 1), min(geo.height, math.ceil(y_hi) + 2))
    cols = np.arange(math.floor(x_lo) - 1, math.ceil(x_hi) + 2)
    # never more than once round a whole panorama; never outside a cropped one
    cols = cols[: geo.width] if geo.wraps else cols[(cols >= 0) & (cols < geo.width)]
    if not rows.size or not cols.size:
        return None
    return cols, rows


def _reproject(view: View, geo: Equirect, cols: np.ndarray, rows: np.ndarray, image: np.ndarray,
               interpolation: int) -> np.ndarray:
    """Sample a view-space image at the panorama pixels (cols x rows)."""
    yaw, pitch = geo.to_angles(cols[None, :] + 0.5, rows[:, None] + 0.5)
    u, v, front = view.project(directions(yaw, pitch))
    u = np.where(front, u - 0.5, -10.0).astype(np.float32)
    v = np.where(front, v - 0.5, -10.0).astype(np.float32)
    return cv2.remap(image, u, v, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _each_region(dets: Detections, geo: Equirect, strength: float) -> Iterable[tuple]:
    if not len(dets):
        return
    assert dets.places is not None and dets.outlines is not None
    for place, outline, cid in zip(dets.places, dets.outlines, dets.class_ids, strict=True):
        view = _blur_view(geo, place)
        box = _box_in_view(view, geo, outline)
        region = planar_blur.region_for(box[0], int(cid), (view.height, view.width), strength)
        if region is None:
            continue
        alpha = np.zeros((view.height, view.width), np.float32)
        rh, rw = region.alpha.shape
        alpha[region.y0 : region.y0 + rh, region.x0 : region.x0 + rw] = region.alpha
        window = _window(view, geo, alpha)
        if window is None:
            continue
        yield view, region.sigma, alpha, window


def blur(pixels: np.ndarray, dets: Detections, geo: Equirect, strength: float = 1.0) -> np.ndarray:
    """Blur every detection on the sphere; pixels outside every mask are left as they are."""
    planar_blur.checked_strength(strength)
    out = pixels.copy()
    top = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else None
    for view, sigma, alpha, (cols, rows) in _each_region(dets, geo, strength):
        blurred = planar_blur.gaussian(render(out, geo, view), sigma)
        a = _reproject(view, geo, cols, rows, alpha, cv2.INTER_LINEAR)
        if not (a > 0).any():
            continue
        b = _reproject(view, geo, cols, rows, blurred, cv2.INTER_LINEAR).astype(np.float32)
        cidx = np.mod(cols, geo.width) if geo.wraps else cols
        win = out[np.ix_(rows, cidx)].astype(np.float32)
        aa = a if win.ndim == 2 else a[..., None]
        mixed = win * (1 - aa) + b * aa
        if top is not None:
            mixed = np.clip(np.rint(mixed), 0, top)
        keep = aa > 1.0 / 512
        out[np.ix_(rows, cidx)] = np.where(keep, mixed, win).astype(pixels.dtype)
    return out


def protected(dets: Detections, geo: Equirect, strength: float = 1.0) -> np.ndarray:
    """Boolean mask of the panorama pixels that ``blur`` hides (alpha of one half or more)."""
    planar_blur.checked_strength(strength)
    mask = np.zeros((geo.height, geo.width), bool)
    for view, _sigma, alpha, (cols, rows) in _each_region(dets, geo, strength):
        a = _reproject(view, geo, cols, rows, alpha, cv2.INTER_LINEAR)
        cidx = np.mod(cols, geo.width) if geo.wraps else cols
        mask[np.ix_(rows, cidx)] |= a >= 0.5
    return mask
