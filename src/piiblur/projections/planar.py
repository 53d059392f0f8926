"""The planar projection, a flat photo: searched in a pyramid of overlapping tiles.

Every detector sees the image at full resolution in overlapping square tiles,
then at coarser and coarser scales (each ``PYRAMID_STEP`` times smaller) until
the whole image fits in one tile. An object small enough to be cut by a tile
edge at one level lies whole inside the overlap; one too large for the overlap
is at least ``OVERLAP / PYRAMID_STEP`` pixels at the next level, where the
detectors still find it. Small images are also seen upscaled, so that faces
and plates of a few pixels reach the size the nets were trained on. Memory
stays bounded by one tile per detector plus the image itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from piiblur import blur as blurring
from piiblur.detections import Detections
from piiblur.detectors import Detector

OVERLAP = 160  # pixels shared by neighbouring tiles, at every level
PYRAMID_STEP = 3.0  # scale ratio between pyramid levels
UPSCALE = 2.0  # extra level for images that fit in one tile
# The whole image is seen once more at half the size of the level where it fits one tile, when that
# half is still this large (the input size the nets were trained at): large plates close to the camera
# score under the threshold at full resolution and over it at half (plates_openalpr_us, a 1280x720 van's
# plate 55 px tall: 0.15 at 1x, 0.45 at 0.5x; figures: README "Measured")
HALF_LEVEL_MIN = 640


@dataclass(frozen=True)
class Tile:
    scale: float  # level scale: tile pixels per image pixel
    x: int  # top-left corner in the scaled image
    y: int
    width: int
    height: int


MAX_LEVELS = 40  # a bound on the pyramid: 3**40 tiles of 1536 px is far beyond any image


def pyramid_scales(width: int, height: int, tile: int) -> list[float]:
    """The scales the image is seen at: 1.0, then each ``PYRAMID_STEP`` times smaller, then exactly
    the scale at which the longest side fills one tile (plus ``UPSCALE`` first for small images), and
    last half that where the image is still ``HALF_LEVEL_MIN`` px or more.

    The number of levels is decided by comparisons of the scaled size against the tile, never by a
    scaled size landing exactly on the tile in floating point, and the loop is bounded.
    """
    longest = max(width, height)
    if min(width, height) < 1 or tile <= OVERLAP:
        raise ValueError(f"no tile pyramid for a {width}x{height} image in {tile}-px tiles")
    scales = [UPSCALE] if longest * UPSCALE <= tile * 1.5 else []
    if longest <= tile:
        return [*scales, *_with_half(1.0, longest)]
    scale = 1.0
    for _ in range(MAX_LEVELS):
        scales.append(scale)
        if longest * scale / PYRAMID_STEP <= tile:  # the next step would fit: the last level fills one tile
            return [*scales, *_with_half(tile / longest, longest)]
        scale /= PYRAMID_STEP
    raise ValueError(f"a {width}x{height} image needs more than {MAX_LEVELS} pyramid levels")


def _with_half(scale: float, longest: int) -> list[float]:
    """The one-tile level, and half of it where that is still ``HALF_LEVEL_MIN`` px or more."""
    return [scale, scale / 2] if longest * scale / 2 >= HALF_LEVEL_MIN else [scale]


def level_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The image's size at a pyramid level."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, size) of the fewest tiles of at most ``tile`` px that cover ``length`` with OVERLAP between them."""
    if length <= tile:
        return [(0, length)]
    count = int(np.ceil((length - OVERLAP) / (tile - OVERLAP)))
    size = min(tile, int(np.ceil((length + (count - 1) * OVERLAP) / count / 32)) * 32)
    return [(round(i * (length - size) / (count - 1)), size) for i in range(count)]


def tiles(width: int, height: int, tile: int) -> Iterator[Tile]:
    for scale in pyramid_scales(width, height, tile):
        sw, sh = level_size(width, height, scale)
        for y, th in _spans(sh, tile):
            for x, tw in _spans(sw, tile):
                yield Tile(scale, x, y, tw, th)


def detect_planar(rgb: np.ndarray, detectors: list[Detector], thresholds: dict[str, float]) -> Detections:
    """Run every detector over the tile pyramid of ``rgb`` and merge what they find."""
    height, width = rgb.shape[:2]
    found: list[Detections] = []
    cut: list[np.ndarray] = []
    for detector in detectors:
        threshold = thresholds[detector.class_name]
        level_scale, level = None, rgb
        for t in tiles(width, height, detector.tile):
            if t.scale != level_scale:
                level_scale = t.scale
                size = level_size(width, height, t.scale)
                interp = cv2.INTER_AREA if t.scale < 1 else cv2.INTER_LINEAR
                level = rgb if t.scale == 1.0 else cv2.resize(rgb, size, interpolation=interp)
            crop = level[t.y : t.y + t.height, t.x : t.x + t.width]
            dets = detector.detect(np.ascontiguousarray(crop), threshold)
            cut.append(cut_by_tile_edge(dets, t, *level.shape[1::-1]))
            found.append(dets.shifted(t.x, t.y).scaled(1.0 / t.scale))
    merged = Detections.merge(found)
    return merged.deduplicated(cut=np.concatenate(cut) if cut else None).clipped(width, height)


def cut_by_tile_edge(dets: Detections, t: Tile, level_width: int, level_height: int) -> np.ndarray:
    """Which boxes (in the tile's pixels) touch an edge of the tile inside the image: perhaps only
    part of the object, whose rest lies in the next tile."""
    return dets.touching(t.width, t.height, (t.x > 0, t.y > 0, t.x + t.width < level_width,
                                             t.y + t.height < level_height))


@dataclass(frozen=True)
class Planar:
    name = "planar"

    def detect(self, rgb: np.ndarray, detectors: list[Detector], thresholds: dict[str, float]) -> Detections:
        return detect_planar(rgb, detectors, thresholds)

    def blur(self, pixels: np.ndarray, found: Detections, strength: float) -> np.ndarray:
        return blurring.blur(pixels, found, strength)

    def protected(self, found: Detections, shape: tuple[int, int], strength: float) -> np.ndarray:
        return blurring.protected(found, shape, strength)


PLANAR = Planar()
