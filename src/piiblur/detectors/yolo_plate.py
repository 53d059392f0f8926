"""Licence plates: YOLOv8n (AGPL-3.0) from the fastanpr 0.1.13 wheel, exported to ONNX.

Input is RGB scaled to 0-1; the output is (1, 5, anchors): centre x, centre y,
width, height and the plate score of every anchor.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors.base import OnnxDetector, register


@register
class YoloPlate(OnnxDetector):
    model: ClassVar[str] = "plate_yolov8n_street"
    name: ClassVar[str] = "yolov8n-plate"
    class_name: ClassVar[str] = "plate"
    tile: ClassVar[int] = 1536

    pad_value: ClassVar[int] = 114
    scale: ClassVar[float] = 1 / 255.0

    def decode(self, outputs: list[np.ndarray], w: int, h: int, threshold: float) -> Detections:
        pred = outputs[0][0]
        keep = pred[4] > threshold
        if not keep.any():
            return Detections.empty()
        cx, cy, bw, bh, scores = pred[:, keep]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return Detections.of_class(xyxy, scores, "plate").clipped(w, h).deduplicated(iou=0.5)
