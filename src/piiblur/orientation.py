"""EXIF orientation: move boxes between the upright picture and the stored pixel grid.

Detection runs on the upright picture (what a person sees) and, when the
orientation turns it, on the stored grid as well (``search_both_ways``): a
viewer that ignores the tag, or a tag that is wrong, shows the stored grid,
and the nets find faces upright only. The output keeps the stored pixel
layout and its orientation tag, so boxes are mapped back to the stored grid
before blurring. All eight orientations are axis-aligned flips and quarter
turns, so a box stays a box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image

from piiblur.detections import Detections

# the Pillow transpose that turns the stored grid upright, per orientation (what a viewer does)
TO_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# and its inverse: the two quarter turns swap, every other transpose undoes itself
TO_STORED = {**TO_UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _stored_to_upright(orientation: int, width: int, height: int) -> np.ndarray:
    """2x3 affine matrix taking stored-grid points (x, y) to upright points."""
    w, h = float(width), float(height)
    return {
        1: [[1, 0, 0], [0, 1, 0]],
        2: [[-1, 0, w], [0, 1, 0]],
        3: [[-1, 0, w], [0, -1, h]],
        4: [[1, 0, 0], [0, -1, h]],
        5: [[0, 1, 0], [1, 0, 0]],
        6: [[0, -1, h], [1, 0, 0]],
        7: [[0, -1, h], [-1, 0, w]],
        8: [[0, 1, 0], [-1, 0, w]],
    }[orientation]


def _apply(matrix: np.ndarray, dets: Detections) -> Detections:
    if not len(dets):
        return dets
    a, t = matrix[:, :2], matrix[:, 2]
    corners = [dets.xyxy[:, [0, 1]], dets.xyxy[:, [2, 3]]]
    moved = [c @ a.T + t for c in corners]
    lo, hi = np.minimum(*moved), np.maximum(*moved)
    return Detections(np.concatenate([lo, hi], axis=1), dets.scores, dets.class_ids)


def upright_to_stored(dets: Detections, orientation: int, stored_size: tuple[int, int]) -> Detections:
    """Boxes found on the upright picture, in the stored grid of size (width, height)."""
    if orientation == 1:
        return dets
    forward = np.vstack([np.array(_stored_to_upright(orientation, *stored_size), float), [0, 0, 1]])
    return _apply(np.linalg.inv(forward)[:2], dets)


def stored_to_upright(dets: Detections, orientation: int, stored_size: tuple[int, int]) -> Detections:
    """Boxes found on the stored grid of size (width, height), in the upright picture."""
    if orientation == 1:
        return dets
    return _apply(np.array(_stored_to_upright(orientation, *stored_size), float), dets)


def as_stored(upright: np.ndarray, orientation: int) -> np.ndarray:
    """An upright picture turned back into its stored grid: what a viewer that ignores the tag shows."""
    if orientation == 1:
        return upright
    return np.ascontiguousarray(np.asarray(Image.fromarray(upright).transpose(TO_STORED[orientation])))


def search_both_ways(search: Callable[[np.ndarray], Detections], upright: np.ndarray, orientation: int) -> Detections:
    """What ``search`` finds in the upright picture and, when ``orientation`` turns it, in the picture as it
    is stored (turned back), in upright coordinates. A face upside down or on its side to a person stands
    upright in the stored grid when the tag is wrong (a camera pointed at the ground) or hostile, and any
    viewer that ignores the tag shows it so. Costs a second search of turned photos only; panoramas are
    stored upright."""
    found = search(upright)
    if orientation == 1:
        return found
    stored = as_stored(upright, orientation)
    more = stored_to_upright(search(stored), orientation, (stored.shape[1], stored.shape[0]))
    return Detections.merge([found, more]).deduplicated()


class Oriented(Protocol):
    """What ``later_frames_orientation`` reads of a decoded image (``formats.SourceImage``)."""

    orientation: int
    image_upright: bool


def later_frames_orientation(image: Oriented) -> int:
    """How an image's later frames are stored: like the first, but upright when the decoder turned them (TIFF)."""
    return 1 if image.image_upright else image.orientation


def embedded_turn(picture: Image.Image, orientation: int) -> int:
    """How an embedded image is stored: by its own EXIF orientation, else by its file's (an EXIF thumbnail
    is stored like the picture it belongs to)."""
    own = int(picture.getexif().get(0x0112, 1) or 1)
    return own if own in TO_UPRIGHT and own != 1 else orientation


def embedded_upright(picture: Image.Image, orientation: int) -> np.ndarray:
    """An embedded image turned upright (``embedded_turn``)."""
    turn = embedded_turn(picture, orientation)
    rgb = picture.convert("RGB")
    return np.asarray(rgb if turn == 1 else rgb.transpose(TO_UPRIGHT[turn]))
