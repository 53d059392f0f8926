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
