"""How much of each labelled face the blur covers, not only whether it is found.

    python benchmarks/face_coverage.py [--data ../shared/data] [--sets faces_dlib ...] [--scale 0.5] [--precision ...]

For every labelled face, runs the pipeline's own detection and mask (``Blurrer.detect`` and
``Blurrer.protected``, so panoramas are searched on the sphere) and prints, per box height: the
faces labelled, those detected (a face detection overlapping the label: IoU 0.2 or more, or the
label's centre inside it), and for the detected ones the share of the labelled box under the blur
mask (mean, min, and how many are under 80%). A face that is found but only partly covered is
recognisable by what sticks out. ``--scale`` shrinks the photos first (flat photos only), to see
the small faces of street scenes in sets whose faces are large.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from piiblur.detections import Detections
from piiblur.evaluate import SIZE_BINS
from piiblur.formats import read_image_bytes
from piiblur.pipeline import Blurrer, Settings

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
GOOD_COVERAGE = 0.8


def _detected(label: np.ndarray, faces: Detections) -> bool:
    if not len(faces):
        return False
    x1, y1, x2, y2 = label
    boxes = faces.xyxy
    iw = np.clip(np.minimum(boxes[:, 2], x2) - np.maximum(boxes[:, 0], x1), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], y2) - np.maximum(boxes[:, 1], y1), 0, None)
    inter = iw * ih
    union = (x2 - x1) * (y2 - y1) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    centre_in = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
    return bool(((inter / np.maximum(union, 1e-9) >= 0.2) | centre_in).any())


def measure_image(blurrer: Blurrer, path: Path, labels: list[dict],
                  scale: float = 1.0) -> list[tuple[float, bool, float]]:
    """(box height, detected, share under the mask) of every labelled face in one image."""
    image = read_image_bytes(path.read_bytes(), path, blurrer.settings.max_pixels)
    geo = blurrer.geometry(image) if scale == 1.0 else None
    rgb = image.upright_rgb()
    if scale != 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    found = blurrer.detect(rgb, geo)
    height, width = rgb.shape[:2]
    mask = blurrer.protected(found, (height, width), geo)
    faces = found.of("face")
    rows = []
    for label in labels:
        if label["class"] != "face":
            continue
        box = np.array(label["box"], float) * scale
        x1, y1, x2, y2 = (int(v) for v in np.rint(box))
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        share = float(mask[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 0.0
        rows.append((float(box[3] - box[1]), _detected(box, faces), share))
    return rows


def table(rows: list[tuple[float, bool, float]]) -> list[str]:
    lines = [f"{'height':>8} {'faces':>6} {'detected':>9} {'cover mean':>11} {'min':>6} {'<80%':>5}"]
    for name, lo, hi in [*SIZE_BINS, ("all", 0, np.inf)]:
        bucket = [r for r in rows if lo <= r[0] < hi]
        if not bucket:
            continue
        shares = np.array([s for _, hit, s in bucket if hit])
        mean, low = (f"{shares.mean():.1%}", f"{shares.min():.0%}") if shares.size else ("-", "-")
        under = int((shares < GOOD_COVERAGE).sum())
        lines.append(f"{name:>8} {len(bucket):>6} {shares.size:>9} {mean:>11} {low:>6} {under:>5}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", nargs="+", default=["faces_dlib"])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the photos by this factor first")
    parser.add_argument("--precision", default="auto", choices=["auto", "int8", "fp32"])
    args = parser.parse_args()
    blurrer = None
    for name in args.sets:
        labels_file = args.data / name / "labels.json"
        if not labels_file.is_file():
            print(f"{name}: no {labels_file}: nothing to measure")
            continue
        blurrer = blurrer or Blurrer(Settings(precision=args.precision))
        labels = json.loads(labels_file.read_text())
        rows = []
        for file, boxes in sorted(labels.items()):
            rows.extend(measure_image(blurrer, args.data / name / "images" / file, boxes, args.scale))
        print(f"\n{name} (scale {args.scale:g}): share of each labelled face box under the blur mask")
        print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
