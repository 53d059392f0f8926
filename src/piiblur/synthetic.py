"""Synthetic panoramas with exact truth: real crops placed on the sphere.

An object is a crop of a photo (a labelled box plus some context around it)
laid on the sphere as a flat patch tangent at (yaw, pitch), so it looks
undistorted to a camera pointed at it, and drawn into the equirectangular
image with the projection's true distortion (stretched near the poles, cut in
two at the seam). Its truth is its footprint: the panorama pixels whose
direction falls inside the labelled box.

Used by ``benchmarks/panorama.py`` and the tests; it needs nothing but the
crop and the panorama.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from piiblur.projections.camera import View, directions
from piiblur.projections.sphere_geometry import Equirect


@dataclass(frozen=True)
class Crop:
    """A picture of one object: pixels (RGB) and the labelled box within them."""

    pixels: np.ndarray
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the crop's pixels

    @property
    def box_height(self) -> float:
        return self.box[3] - self.box[1]


def cut(rgb: np.ndarray, box: tuple[float, float, float, float], margin_x: float, margin_y: float) -> Crop:
    """The box with ``margin_x``/``margin_y`` pixels of context each side (clipped to the image)."""
    x1, y1, x2, y2 = box
    h, w = rgb.shape[:2]
    cx0, cy0 = max(0, math.floor(x1 - margin_x)), max(0, math.floor(y1 - margin_y))
    cx1, cy1 = min(w, math.ceil(x2 + margin_x)), min(h, math.ceil(y2 + margin_y))
    pixels = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
    return Crop(pixels, (x1 - cx0, y1 - cy0, x2 - cx0, y2 - cy0))


def scaled(crop: Crop, factor: float) -> Crop:
    """The crop resized by ``factor`` (area filter down, cubic up)."""
    h, w = crop.pixels.shape[:2]
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    pixels = cv2.resize(crop.pixels, size, interpolation=interp)
    fx, fy = size[0] / w, size[1] / h
    x1, y1, x2, y2 = crop.box
    return Crop(pixels, (x1 * fx, y1 * fy, x2 * fx, y2 * fy))


@dataclass
class Placed:
    """Where an object went and the panorama pixels it covers.

    Masks are kept for the object's window only (``rows`` x ``cols``, columns
    already taken modulo the width); ``mask`` paints one into a whole panorama.
    """

    yaw: float
    pitch: float
    size: float  # labelled box height in pixels at the equator's scale
    shape: tuple[int, int]  # the panorama's (height, width)
    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray  # window bool: pixels inside the labelled box (the truth)
    around: np.ndarray  # window bool: inside the box grown by ``grow`` (for collateral blur)
    patch: np.ndarray  # window bool: pixels the crop was drawn on (box and context)

    def mask(self, which: str = "inside", into: np.ndarray | None = None) -> np.ndarray:
        """A (H, W) bool mask of ``inside``, ``around`` or ``patch``, or-ed into ``into`` if given."""
        out = np.zeros(self.shape, bool) if into is None else into
        out[np.ix_(self.rows, self.cols)] |= getattr(self, which)
        return out

    @property
    def footprint(self) -> np.ndarray:
        """(H, W) bool: the panorama pixels inside the labelled box."""
        return self.mask("inside")

    def coverage(self, protected: np.ndarray) -> float:
        """Share of the footprint that a (H, W) mask covers."""
        if not self.inside.any():
            return 0.0
        return float(protected[np.ix_(self.rows, self.cols)][self.inside].mean())

    @property
    def crosses_seam(self) -> bool:
        cols = set(self.cols[self.inside.any(axis=0)].tolist())
        return 0 in cols and self.shape[1] - 1 in cols


def angular_radius(crop: Crop, focal: float) -> float:
    """Degrees from the box centre to the crop's farthest corner, once placed at ``focal``."""
    x1, y1, x2, y2 = crop.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = crop.pixels.shape[:2]
    reach = max(math.hypot(px - cx, py - cy) for px in (0, w) for py in (0, h))
    return math.degrees(math.atan(reach / focal))


def _window(geo: Equirect, yaw: float, pitch: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Panorama columns (may run past either edge) and rows within ``radius`` degrees of a direction."""
    top, bottom = pitch + radius, pitch - radius
    y_top = geo.to_pixels(np.array(0.0), np.array(min(top, 90.0)))[1]
    y_bottom = geo.to_pixels(np.array(0.0), np.array(max(bottom, -90.0)))[1]
    rows = np.arange(max(0, math.floor(float(y_top)) - 1), min(geo.height, math.ceil(float(y_bottom)) + 2))
    spread = math.sin(math.radians(radius)) / max(math.cos(math.radians(pitch)), 1e-9)
    if top >= 90 or bottom <= -90 or spread >= 1:
        return np.arange(geo.width), rows
    half = math.degrees(math.asin(spread))
    x0 = float(geo.to_pixels(np.array(yaw - half), np.array(0.0))[0])
    x1 = float(geo.to_pixels(np.array(yaw + half), np.array(0.0))[0])
    cols = np.arange(math.floor(x0) - 1, math.ceil(x1) + 2)
    return cols[: geo.width], rows


def place(pano: np.ndarray, geo: Equirect, crop: Crop, yaw: float, pitch: float, size: float,
          feather: float = 0.5, grow: tuple[float, float] = (0.0, 0.0)) -> Placed:
    """Draw ``crop`` into ``pano`` (in place) tangent to the sphere at (yaw, pitch).

    The labelled box gets an angular height of ``size`` pixels at the equator's
    scale. Its context fades into the background over ``feather`` of the margin
    between the box and the crop's edge. ``grow`` (x, y) enlarges the box, in
    crop pixels each side, for the ``around`` mask.
    """
    x1, y1, x2, y2 = crop.box
    focal = geo.focal * (y2 - y1) / size  # crop pixels per radian
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    cols, rows = _window(geo, yaw, pitch, angular_radius(crop, focal) + 0.5)
    yaws, pitches = geo.to_angles(cols[None, :] + 0.5, rows[:, None] + 0.5)
    # a view whose principal point is the box centre, at the crop's scale
    view = View(yaw, pitch, 0, 0, focal)
    u, v, front = view.project(directions(yaws, pitches))
    u = np.where(front, u + cx - 0.5, -1e4).astype(np.float32)
    v = np.where(front, v + cy - 0.5, -1e4).astype(np.float32)

    h, w = crop.pixels.shape[:2]
    alpha = _context_alpha(w, h, crop.box, feather)
    a = cv2.remap(alpha, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    src = cv2.remap(crop.pixels, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cidx = np.mod(cols, geo.width)
    win = pano[np.ix_(rows, cidx)].astype(np.float32)
    aa = a[..., None] if win.ndim == 3 else a
    pano[np.ix_(rows, cidx)] = np.clip(np.rint(win * (1 - aa) + src.astype(np.float32) * aa), 0, 255).astype(
        pano.dtype)

    uc, vc = u + 0.5, v + 0.5  # back to continuous crop coordinates of pixel centres
    inside = (uc >= x1) & (uc <= x2) & (vc >= y1) & (vc <= y2)
    gx, gy = grow
    around = (uc >= x1 - gx) & (uc <= x2 + gx) & (vc >= y1 - gy) & (vc <= y2 + gy)
    return Placed(yaw, pitch, size, (geo.height, geo.width), rows, cidx, inside, around, a > 0)


def _context_alpha(w: int, h: int, box: tuple[float, float, float, float], feather: float) -> np.ndarray:
    """1 over the box and the inner part of the context, fading to 0 at the crop's edge."""
    x1, y1, x2, y2 = box
    xs, ys = np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5

    def ramp(t: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
        # distance into the crop from its edge, over the width of the fade
        left = max(lo * feather, 1.0)
        right = max((edge - hi) * feather, 1.0)
        return np.clip(np.minimum(t / left, (edge - t) / right), 0, 1)

    ax = ramp(xs, x1, x2, float(w))
    ay = ramp(ys, y1, y2, float(h))
    return (ay[:, None] * ax[None, :]).astype(np.float32)


def separation(yaw1: float, pitch1: float, yaw2: float, pitch2: float) -> float:
    """Angle in degrees between two directions."""
    a = directions(np.array(yaw1), np.array(pitch1))
    b = directions(np.array(yaw2), np.array(pitch2))
    return math.degrees(math.acos(float(np.clip(a @ b, -1, 1))))
