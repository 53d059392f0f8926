"""Small helpers the tests share: paths, a synthetic plate, a detail measure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "street_portrait.jpg"
FACE_BOX = (175, 54, 275, 180)  # where the face is in the example (x1, y1, x2, y2)
PLATE_BOX = (20, 440, 140, 470)


def draw_plate(rgb: np.ndarray, x: int, y: int, text: str = "KL 482 TX", w: int = 120, h: int = 30) -> None:
    cv2.rectangle(rgb, (x, y), (x + w, y + h), (245, 245, 245), -1)
    cv2.rectangle(rgb, (x, y), (x + w, y + h), (0, 0, 0), 2)
    cv2.putText(rgb, text, (x + 6, y + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.56, (0, 0, 0), 2, cv2.LINE_AA)


def detail(pixels: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Fine detail inside a box: the variance of the Laplacian of its grey levels."""
    x1, y1, x2, y2 = box
    crop = np.asarray(pixels)[y1:y2, x1:x2].astype(np.float32)
    grey = crop.mean(axis=2) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def sky_and_ground(height: int, width: int) -> np.ndarray:
    """A plain panorama background: sky blue at the top fading to grass green at the bottom (uint8 RGB)."""
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.array([120, 160, 210]) * (1 - ys) + np.array([90, 110, 70]) * ys,
                           (height, width, 3)).astype(np.uint8).copy()


def turned_plate_panorama(turn: float):  # type: ignore[no-untyped-def]
    """A 2000x1000 panorama (and its ``Equirect``) with the example's plate turned by ``turn`` degrees,
    40 degrees down, 20 px tall at the panorama's density: a plate seen from above and the side."""
    from PIL import Image

    from piiblur import sphere
    from piiblur import synthetic as syn

    portrait = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    x1, y1, x2, y2 = PLATE_BOX
    crop = syn.cut(portrait, (float(x1), float(y1), float(x2), float(y2)), float(x2 - x1), 2.0 * (y2 - y1))
    h, w = crop.pixels.shape[:2]
    centre = ((crop.box[0] + crop.box[2]) / 2, (crop.box[1] + crop.box[3]) / 2)
    rotation = cv2.getRotationMatrix2D(centre, turn, 1.0)
    turned = syn.Crop(cv2.warpAffine(crop.pixels, rotation, (w, h), borderMode=cv2.BORDER_REFLECT), crop.box)
    geo = sphere.Equirect(2000, 1000, 2000, 1000)
    pano = np.full((geo.height, geo.width, 3), 110, np.uint8)
    syn.place(pano, geo, turned, 40.0, -40.0, 20)
    return pano, geo
