"""Where an image sits on the sphere (``Equirect``), and views rendered from it.

A panorama maps longitude to x and latitude to y; ``render`` samples a
pinhole view (``camera.View``) from it, across the left/right seam when the
panorama covers all 360 degrees.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from piiblur.projections.camera import View


@dataclass(frozen=True)
class Equirect:
    """Where an image sits on the sphere: a full 360x180 panorama or a GPano crop of one."""

    width: int  # image pixels
    height: int
    full_width: int  # the whole sphere's pixels at the same scale
    full_height: int
    left: int = 0  # the image's top-left corner within the whole sphere
    top: int = 0

    @property
    def wraps(self) -> bool:
        """True when the image covers all 360 degrees of yaw, so its left and right edges meet."""
        return self.width >= self.full_width

    @property
    def focal(self) -> float:
        """Focal length (pixels) of a view with the panorama's own density at the equator."""
        return self.full_width / (2 * math.pi)

    def to_pixels(self, yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = (np.asarray(yaw) / 360.0 + 0.5) * self.full_width - self.left
        y = (0.5 - np.asarray(pitch) / 180.0) * self.full_height - self.top
        return x, y

    def to_angles(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        yaw = ((np.asarray(x) + self.left) / self.full_width - 0.5) * 360.0
        pitch = (0.5 - (np.asarray(y) + self.top) / self.full_height) * 180.0
        return yaw, pitch

    def covers(self, yaw: float, pitch: float, margin: float) -> bool:
        """True when a direction is within ``margin`` degrees of the image's part of the sphere."""
        if self.wraps and self.height >= self.full_height:
            return True
        (y0, p0), (y1, p1) = (np.array(v).item() for v in self.to_angles(0, 0)), (
            np.array(v).item() for v in self.to_angles(self.width, self.height)
        )
        if not (p1 - margin <= pitch <= p0 + margin):
            return False
        if self.wraps:
            return True
        centre, half = (y0 + y1) / 2, (y1 - y0) / 2
        return abs((yaw - centre + 180) % 360 - 180) <= half + margin / max(math.cos(math.radians(pitch)), 0.05)


MAP_STEP = 8  # view-to-panorama maps are computed on a grid this coarse and interpolated


def render(pixels: np.ndarray, geo: Equirect, view: View, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The view's picture, sampled from the panorama (across the seam when the panorama wraps).

    For a one-off view (a closer look, a blur): its maps are not kept, so that the searched rings'
    maps stay cached (``RingRenderer``)."""
    x, y = _turned(_unturned_maps(geo, view, _ring_maps.__wrapped__), geo, view)  # x: a new array, ours
    return _remap_prepared(pixels, x, np.clip(y, 0, geo.height - 1), geo, interpolation)


class RingRenderer:
    """Renders the views of one panorama in turn, computing each ring's maps once.

    The views of a ring differ only by a turn in yaw: one full-resolution map serves them all,
    shifted (the same arithmetic as ``render``, so the same pictures). The rings' coarse maps are
    cached across panoramas of one size (``_ring_maps``)."""

    def __init__(self, pixels: np.ndarray, geo: Equirect) -> None:
        self.pixels, self.geo = pixels, geo
        self._key: tuple[float, int, int, float, float] | None = None
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        self._x = np.empty(0, np.float32)

    def render(self, view: View, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The view's picture, or only its part ``window`` (x0, y0, x1, y1)."""
        key = (view.pitch, view.width, view.height, view.focal, view.roll)
        if key != self._key or self._maps is None:
            x, y = _unturned_maps(self.geo, view, _ring_maps)
            # the ring's y never changes and is clipped once; x is turned into one buffer per ring
            self._maps = (x, np.clip(y, 0, self.geo.height - 1))
            self._x = np.empty_like(x)
            self._key = key
        x0, y0, x1, y1 = window or (0, 0, view.width, view.height)
        # x turned into the front of the ring's one buffer, as a contiguous array of the window's shape
        out = self._x.reshape(-1)[: (y1 - y0) * (x1 - x0)].reshape(y1 - y0, x1 - x0)
        x = np.add(self._maps[0][y0:y1, x0:x1], _shift(self.geo, view), out=out)
        return _remap_prepared(self.pixels, x, self._maps[1][y0:y1, x0:x1], self.geo, cv2.INTER_LINEAR)


def _shift(geo: Equirect, view: View) -> np.float32:
    """Every view of a ring is the same map, turned: this many panorama pixels in x."""
    return np.float32(view.yaw / 360.0 * geo.full_width)


def _turned(maps: tuple[np.ndarray, np.ndarray], geo: Equirect, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Panorama pixel coordinates of every view pixel (x continuous across the seam)."""
    return maps[0] + _shift(geo, view), maps[1]


def _unturned_maps(geo: Equirect, view: View, ring_maps: Callable[..., tuple[np.ndarray, np.ndarray, int]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The full-resolution maps of the view turned to yaw 0 (``ring_maps``: cached or not)."""
    coarse_x, coarse_y, step = ring_maps(geo, view.pitch, view.width, view.height, view.focal, view.roll)
    if step == 1:
        return coarse_x[: view.height, : view.width], coarse_y[: view.height, : view.width]
    u = (np.arange(view.width, dtype=np.float32) / step)[None, :].repeat(view.height, 0)
    v = (np.arange(view.height, dtype=np.float32) / step)[:, None].repeat(view.width, 1)
    x = cv2.remap(coarse_x, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    y = cv2.remap(coarse_y, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return x, y


@functools.lru_cache(maxsize=32)
def _ring_maps(geo: Equirect, pitch: float, width: int, height: int, focal: float,
               roll: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The maps of a view at yaw 0, on a coarse grid, or at full resolution where the view holds a
    pole (yaw is singular there and cannot be interpolated)."""
    view = View(0.0, pitch, width, height, focal, roll)
    pu, pv, front = view.project(np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    margin = 2 * MAP_STEP
    near = front & (pu > -margin) & (pu < view.width + margin) & (pv > -margin) & (pv < view.height + margin)
    step = 1 if near.any() else MAP_STEP
    columns, rows = np.arange(0, view.width + step, step) + 0.5, np.arange(0, view.height + step, step) + 0.5
    x, y = geo.to_pixels(*view.grid_angles(columns, rows))
    centre = geo.to_pixels(np.array(0.0), np.array(0.0))[0]
    # continuous across the seam, centred on the view (the pole views wrap in remap anyway)
    x = centre + (x - centre + geo.full_width / 2) % geo.full_width - geo.full_width / 2
    return (x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32), step


def remap(pixels: np.ndarray, x: np.ndarray, y: np.ndarray, geo: Equirect, interpolation: int) -> np.ndarray:
    """The picture at panorama coordinates ``x``, ``y`` (any range: wrapped or clipped here)."""
    clipped = np.clip(y, 0, geo.height - 1).astype(np.float32, copy=False)
    return _remap_prepared(pixels, np.array(x, np.float32), clipped, geo, interpolation)


def _remap_prepared(pixels: np.ndarray, x: np.ndarray, y: np.ndarray, geo: Equirect, interpolation: int) -> np.ndarray:
    """``remap`` for float32 maps that are the caller's to change (``x`` is wrapped in place) and a
    ``y`` already clipped to the image."""
    if geo.wraps and not _within_int16(x):
        # remap works in int16 pixel coordinates and wraps any of them itself (BORDER_WRAP); only a
        # map beyond int16 (a panorama over about 21K wide) is wrapped here first, which costs as much
        # as the remap itself
        np.mod(x, geo.width, out=x)
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] > 4:
        raise ValueError("at most 4 channels")
    work = pixels if pixels.dtype in (np.uint8, np.uint16, np.float32) else pixels.astype(np.float32)
    border = cv2.BORDER_WRAP if geo.wraps else cv2.BORDER_CONSTANT
    out = cv2.remap(work, x, y, interpolation, borderMode=border)
    return out.astype(pixels.dtype, copy=False)


def _within_int16(x: np.ndarray) -> bool:
    return x.size == 0 or (float(x.min()) > -_INT16_SAFE and float(x.max()) < _INT16_SAFE)


_INT16_SAFE = 32000.0  # of remap's int16 coordinates (-32768..32767), less room for the neighbour pixel


def unwrapped(x: np.ndarray, period: float) -> np.ndarray:
    """Make a closed path's x continuous across the seam (steps of over half the width are wraps)."""
    steps = np.diff(x)
    steps = steps - period * np.round(steps / period)
    out = np.concatenate([[x[0]], x[0] + np.cumsum(steps)])
    # keep the centre within the image's width
    return out - period * np.floor(out.mean() / period)
