"""Licence plates: YOLOv8n (AGPL-3.0) from the fastanpr 0.1.13 wheel, exported to ONNX.

Input is RGB scaled to 0-1; the output is (1, 5, anchors): centre x, centre y,
width, height and the plate score of every anchor.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from piiblur.detections import Detections
from piiblur.detectors.base import OnnxRuntimeOptions, make_session, pad_to_multiple, register


@register
class YoloPlate:
    name: ClassVar[str] = "yolov8n-plate"
    class_name: ClassVar[str] = "plate"
    tile: ClassVar[int] = 1536
    default_threshold: ClassVar[float] = 0.25

    def __init__(self, options: OnnxRuntimeOptions) -> None:
        self.session = make_session("plate_yolov8n", options)
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, rgb: np.ndarray, threshold: float) -> Detections:
        h, w = rgb.shape[:2]
        blob = pad_to_multiple(rgb, 32, value=114).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        (out,) = self.session.run(None, {self.input_name: blob})
        pred = out[0]
        keep = pred[4] > threshold
        if not keep.any():
            return Detections.empty()
        cx, cy, bw, bh, scores = pred[:, keep]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return Detections.of_class(xyxy, scores, "plate").clipped(w, h).deduplicated(iou=0.5)
