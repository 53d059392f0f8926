"""Licence plates: YOLOv8n (AGPL-3.0) from the fastanpr 0.1.13 wheel, exported to ONNX.

Input is RGB scaled to 0-1. The shipped files end before the box decoding
(``training/head_split.py``): outputs (1, 64, anchors), the logits of 16
distance bins for each side of each anchor's box, and (1, 1, anchors), its
plate score; only the anchors over the threshold are decoded, here. A full
ultralytics export (one output, (1, 5, anchors): centre x, centre y, width,
height, score), such as a net being trained, is read as it is.
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
        if len(outputs) == 1:  # a full export: boxes decoded in the net
            pred = outputs[0][0]
            keep = pred[4] > threshold
            cx, cy, bw, bh = pred[:4, keep]
            scores = pred[4, keep]
            xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        else:
            bins, scores = outputs[0][0], outputs[1][0, 0]
            keep = np.flatnonzero(scores > threshold)
            scores = scores[keep]
            xyxy = _boxes(bins[:, keep], keep, w + (-w % self.stride), h + (-h % self.stride))
        if not len(scores):
            return Detections.empty()
        return Detections.of_class(xyxy, scores, "plate").clipped(w, h).deduplicated(iou=0.5)


STRIDES = (8, 16, 32)  # of the head's three levels, whose anchors follow one another row by row
BINS = 16  # distance bins per box side


def _boxes(bins: np.ndarray, anchors: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n, 4) boxes, x1 y1 x2 y2 in input pixels, of the anchors numbered ``anchors`` in a ``width`` x
    ``height`` input, from their bins' logits (64, n): each side's distance is the expectation of its
    16 bins' softmax, in strides, from the anchor (the centre of its cell)."""
    logits = bins.reshape(4, BINS, -1).astype(np.float64)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    dist = (weights * np.arange(BINS)[None, :, None]).sum(axis=1) / weights.sum(axis=1)  # (4, n)
    x = np.empty(len(anchors))
    y, stride = np.empty(len(anchors)), np.empty(len(anchors))
    start = 0
    for s in STRIDES:
        cols, rows = width // s, height // s
        here = (anchors >= start) & (anchors < start + cols * rows)
        cell = anchors[here] - start
        x[here], y[here], stride[here] = cell % cols + 0.5, cell // cols + 0.5, s
        start += cols * rows
    left, top, right, bottom = dist
    return (np.stack([x - left, y - top, x + right, y + bottom], axis=1) * stride[:, None]).astype(np.float32)
