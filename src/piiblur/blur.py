"""Masks and blur: hide each detection under a soft-edged Gaussian blur.

Shape: an ellipse for a face (grown by ``FACE_GROWTH`` so hairline, ears and
chin are covered), a rounded rectangle for a plate (grown by
``PLATE_MARGIN`` of its height on every side, so the frame goes too).

Strength: the Gaussian's sigma is ``strength * SIGMA_PER_SIZE`` times the
shorter side of the grown shape, never under ``MIN_SIGMA`` pixels. At the
default strength 1.0 that is a quarter of the shape: a Gaussian of sigma s
passes only detail coarser than about 1/(2*pi*s) cycles per pixel, so what is
left of a face, whatever its size, is under one cycle across it (roughly a
2x3-pixel thumbnail): no eyes, mouth or nose shape survive, and plate
characters (about 60% of the plate height tall) melt into one smear. Because
sigma scales with the region, a 400-pixel face is as unrecognisable as a
20-pixel one.

The strength is refused (ValueError) outside [``MIN_STRENGTH``, ``MAX_STRENGTH``]:
what is left of a shape of side d is detail of about d / (2 pi sigma) =
1 / (2 pi SIGMA_PER_SIZE strength) cycles across it, 0.64 / strength; at
``MIN_STRENGTH`` that is just under one cycle, the most that still hides a face.
Beyond ``MAX_STRENGTH`` (sigma 2.5 times the shape) the blur is already a flat
average of the shape's surroundings, and stronger only costs time.

Edge: the mask is fully opaque over the whole grown shape and fades to
nothing over ``FEATHER`` of its size outside it, so there is no hard edge and
no visible box. Pixels where the mask is zero are not touched at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from piiblur.classes import CLASS_TABLE, Shape
from piiblur.detections import Detections

FACE_GROWTH = 1.3  # ellipse semi-axes = half the box sides times this
FACE_MIN_WIDTH = 0.8  # a face is at least this share of its height wide: a profile's narrow box still hides the face
PLATE_MARGIN = 0.2  # plate box grown by this share of its height on every side
SIGMA_PER_SIZE = 0.25
MIN_SIGMA = 2.0
MIN_STRENGTH = 0.64  # 1 / (2 pi SIGMA_PER_SIZE MIN_STRENGTH) = 0.995 cycles across the shape
MAX_STRENGTH = 10.0
FEATHER = 0.12  # width of the soft edge, as a share of the shape's shorter side
_SUBPIXEL = 4  # fractional bits for cv2 drawing


@dataclass(frozen=True)
class Region:
    """One shape to blur: its mask window in image pixels and its alpha (0-1) there."""

    x0: int
    y0: int
    alpha: np.ndarray  # (h, w) float32
    sigma: float


def checked_strength(strength: float) -> float:
    """``strength`` as a float, or ValueError when it would leave a face recognisable (under
    ``MIN_STRENGTH``, or nan) or is beyond ``MAX_STRENGTH``."""
    value = float(strength)
    if not MIN_STRENGTH <= value <= MAX_STRENGTH:  # false for nan too
        raise ValueError(f"blur strength must be from {MIN_STRENGTH:g} (weaker leaves faces recognisable) "
                         f"to {MAX_STRENGTH:g}, not {strength!r}")
    return value


def _shape_extent(box: np.ndarray, cid: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    if CLASS_TABLE[cid].shape is Shape.ROUNDED_RECTANGLE:
        m = PLATE_MARGIN * h + 1.0
        return cx, cy, w / 2 + m, h / 2 + m
    w = max(w, FACE_MIN_WIDTH * h)  # faces and anything else: an ellipse
    return cx, cy, w / 2 * FACE_GROWTH, h / 2 * FACE_GROWTH


def region_for(box: np.ndarray, cid: int, shape: tuple[int, int], strength: float = 1.0) -> Region | None:
    """The soft mask of one detection, clipped to an image of ``shape`` (height, width)."""
    strength = checked_strength(strength)
    height, width = shape
    cx, cy, ax, ay = _shape_extent(box, cid)
    short = 2 * min(ax, ay)
    feather = max(2.0, FEATHER * short)
    pad = 2 * feather + 2
    x0, y0 = max(0, int(np.floor(cx - ax - pad))), max(0, int(np.floor(cy - ay - pad)))
    x1, y1 = min(width, int(np.ceil(cx + ax + pad))), min(height, int(np.ceil(cy + ay + pad)))
    if x1 <= x0 or y1 <= y0:
        return None
    hard = np.zeros((y1 - y0, x1 - x0), np.uint8)
    scale = 1 << _SUBPIXEL
    centre = (round((cx - x0) * scale), round((cy - y0) * scale))
    # the hard shape is drawn grown by half a feather; blurring it makes the ramp,
    # and doubling the blurred value keeps alpha at 1 over the whole grown shape
    grow = feather / 2
    if CLASS_TABLE[cid].shape is Shape.ROUNDED_RECTANGLE:
        _rounded_rect(hard, cx - x0, cy - y0, ax + grow, ay + grow, radius=0.5 * ay)
    else:
        axes = (round((ax + grow) * scale), round((ay + grow) * scale))
        cv2.ellipse(hard, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_AA, _SUBPIXEL)
    soft = cv2.GaussianBlur(hard.astype(np.float32) / 255.0, (0, 0), feather / 2.5)
    alpha = np.clip(soft * 2.0, 0.0, 1.0)
    alpha[alpha < 1.0 / 512] = 0.0
    sigma = max(MIN_SIGMA, strength * SIGMA_PER_SIZE * short)
    return Region(x0, y0, alpha, sigma)


def _rounded_rect(canvas: np.ndarray, cx: float, cy: float, hx: float, hy: float, radius: float) -> None:
    r = max(0.0, min(radius, hx, hy))
    x0, y0, x1, y1 = cx - hx, cy - hy, cx + hx, cy + hy
    s = 1 << _SUBPIXEL

    def p(x: float, y: float) -> tuple[int, int]:
        return round(x * s), round(y * s)

    cv2.rectangle(canvas, p(x0 + r, y0), p(x1 - r, y1), 255, -1, cv2.LINE_AA, _SUBPIXEL)
    cv2.rectangle(canvas, p(x0, y0 + r), p(x1, y1 - r), 255, -1, cv2.LINE_AA, _SUBPIXEL)
    for ccx, ccy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(canvas, p(ccx, ccy), round(r * s), 255, -1, cv2.LINE_AA, _SUBPIXEL)


def regions(dets: Detections, shape: tuple[int, int], strength: float = 1.0) -> list[Region]:
    checked_strength(strength)  # refused even when there is nothing to blur
    found = (region_for(box, int(c), shape, strength) for box, c in zip(dets.xyxy, dets.class_ids, strict=True))
    return [r for r in found if r is not None]


def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of any dtype; large sigmas run on a downscaled copy (same look, far faster).

    A sigma beyond twice the image's longest side is taken as that (the reflected Gaussian is the
    image's mean by then), and the copy keeps at least 4 pixels on its longest side, so any finite
    sigma costs no more than a small one.
    """
    h, w = img.shape[:2]
    sigma = min(float(sigma), 2.0 * max(h, w))
    factor = min(sigma / 6.0, max(h, w) / 4.0)
    work = img.astype(np.float32)
    if factor > 2:
        small = cv2.resize(work, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(work, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def blur(pixels: np.ndarray, dets: Detections, strength: float = 1.0) -> np.ndarray:
    """Return a copy of ``pixels`` (H, W[, C], any dtype) with every detection blurred."""
    out = pixels.copy()
    height, width = pixels.shape[:2]
    top = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else None
    for region in regions(dets, (height, width), strength):
        rh, rw = region.alpha.shape
        # blur a window larger than the mask so its edge sees real neighbours
        ctx = int(np.ceil(3 * region.sigma))
        bx0, by0 = max(0, region.x0 - ctx), max(0, region.y0 - ctx)
        bx1, by1 = min(width, region.x0 + rw + ctx), min(height, region.y0 + rh + ctx)
        blurred = gaussian(out[by0:by1, bx0:bx1], region.sigma)
        sy, sx = region.y0 - by0, region.x0 - bx0
        blurred = blurred[sy : sy + rh, sx : sx + rw]
        window = out[region.y0 : region.y0 + rh, region.x0 : region.x0 + rw]
        alpha = region.alpha if window.ndim == 2 else region.alpha[..., None]
        mixed = window.astype(np.float32) * (1.0 - alpha) + blurred * alpha
        if top is not None:
            mixed = np.clip(np.rint(mixed), 0, top)
        window[...] = np.where(alpha > 0, mixed, window).astype(pixels.dtype)
    return out


def protected(dets: Detections, shape: tuple[int, int], strength: float = 1.0) -> np.ndarray:
    """Boolean (H, W) mask of the pixels that ``blur`` hides (alpha of one half or more)."""
    mask = np.zeros(shape, bool)
    for region in regions(dets, shape, strength):
        rh, rw = region.alpha.shape
        mask[region.y0 : region.y0 + rh, region.x0 : region.x0 + rw] |= region.alpha >= 0.5
    return mask
