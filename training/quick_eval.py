"""Quick check of an exported plate ONNX against the shipped fp32 one, through piiblur's own detector
(``YoloPlate``: padding, scaling, decoding, clipping, de-duplication) on the held-out split of the
training dataset: plate recall (IoU >= 0.3) and detections on the no-plate images, at thresholds.

This is a sanity check on training-source data only; the measurement is benchmarks/plates.py.

  PYTHONPATH=src python training/quick_eval.py training/out/plate_yolov8n_ft.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from piiblur.detectors import base  # noqa: E402
from piiblur.detectors.yolo_plate import YoloPlate  # noqa: E402


def detector(onnx_file: Path) -> YoloPlate:
    orig = base.model_path
    base.model_path = lambda _filename: str(onnx_file)
    try:
        return YoloPlate(base.OnnxRuntimeOptions(device="cpu", precision="fp32"))
    finally:
        base.model_path = orig


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def evaluate(det: YoloPlate, images: list[Path], thresholds=(0.1, 0.25, 0.4)) -> dict:
    res = {t: {"found": 0, "plates": 0, "false": 0, "false_on_negatives": 0, "neg_images": 0} for t in thresholds}
    by_part: dict[str, dict] = {}
    for f in images:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        H, W = rgb.shape[:2]
        lab = f.parent.parent.parent / "labels" / f.parent.name / (f.stem + ".txt")
        rows = [list(map(float, line.split())) for line in lab.read_text().splitlines() if line.strip()]
        gt = np.array([[(x - w / 2) * W, (y - h / 2) * H, (x + w / 2) * W, (y + h / 2) * H] for _, x, y, w, h in rows])
        d = det.detect(rgb, min(thresholds))
        part = f.stem.split("_")[0]
        for t in thresholds:
            keep = d.scores >= t
            boxes = d.xyxy[keep]
            r = res[t]
            r["plates"] += len(gt)
            if len(gt) and len(boxes):
                m = iou(gt, boxes)
                r["found"] += int((m.max(1) >= 0.3).sum())
                r["false"] += int((m.max(0) < 0.1).sum())
            else:
                r["false"] += len(boxes)
            if not len(gt):
                r["neg_images"] += 1
                r["false_on_negatives"] += len(boxes)
            if t == 0.25:
                p = by_part.setdefault(part, {"found": 0, "plates": 0, "false": 0})
                p["plates"] += len(gt)
                p["found"] += int((iou(gt, boxes).max(1) >= 0.3).sum()) if len(gt) and len(boxes) else 0
                p["false"] += int((iou(gt, boxes).max(0) < 0.1).sum()) if len(gt) and len(boxes) else len(boxes)
    out = {f"thr_{t}": dict(r, recall=round(r["found"] / max(r["plates"], 1), 4)) for t, r in res.items()}
    out["by_part_thr_0.25"] = by_part
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx", nargs="+", help="ONNX files to check (the shipped fp32 model is added)")
    ap.add_argument("--data", default=str(HERE / "build" / "dataset"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    images = sorted((Path(args.data) / "images" / args.split).glob("*.jpg"))
    files = [REPO / "src" / "piiblur" / "models" / "plate_yolov8n_street.onnx", *map(Path, args.onnx)]
    results = {}
    for f in files:
        results[f.name] = evaluate(detector(f), images)
        print(f.name, json.dumps(results[f.name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "images": len(images), "results": results},
                                              indent=1))


if __name__ == "__main__":
    main()
