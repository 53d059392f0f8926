"""How the plate net's recall falls as plates turn in the picture (roll): the cause of most plates the
panorama benchmark misses.

    python benchmarks/plate_roll.py [--data ../shared/data] [--plate-model FILE.onnx ...] [--half dev|test|all]
                                    [--rolls -40,-30,...,40]

A plate seen from above and from the side, or at the edge of a view that looks down, is rolled in the
view: in the projected panoramas of ``benchmarks/plates.py`` most missed plates score over 0.5 in a
view turned to match them and under 0.1 in an upright one. Here every labelled plate of
plates_ro_dashcam `valid` (the chosen half) is cut out with its surroundings (a square of 8 times its
width, at least 256 px, at most 640), turned about its centre by each roll, and given to the net alone
(no tiles, no panorama: only the net is measured). A plate counts as found when a detection at the
shipped threshold overlaps its turned box (the bounding box of the turned corners) by 30% of the
smaller of the two boxes. Rows: one per net (the shipped int8 and fp32 files by default, or the
``--plate-model`` files); cells: plates found (%) per roll.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from piiblur.classes import DEFAULT_THRESHOLDS
from piiblur.detections import box_overlap
from piiblur.detectors.base import OnnxRuntimeOptions, model_path
from piiblur.detectors.yolo_plate import YoloPlate
from piiblur.formats import read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plates import DEFAULT_DATA, MATCH_SHARE, in_half


def crops(folder: Path, half: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(square crop, plate box in it) for every labelled plate of the `valid` split's ``half``."""
    labels = json.loads((folder / "labels.json").read_text())
    out = []
    for name, boxes in sorted(labels.items()):
        valid = [b["box"] for b in boxes if b.get("split") == "valid" and b["class"] == "plate"]
        if not valid or not in_half(name, half):
            continue
        rgb = read_image(folder / "images" / name).upright_rgb()
        for x1, y1, x2, y2 in valid:
            side = int(np.clip(8 * (x2 - x1), 256, 640))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = round(cx - side / 2), round(cy - side / 2)
            pad = cv2.copyMakeBorder(rgb, side, side, side, side, cv2.BORDER_REFLECT)
            crop = pad[top + side : top + 2 * side, left + side : left + 2 * side]
            out.append((np.ascontiguousarray(crop), np.array([x1 - left, y1 - top, x2 - left, y2 - top], np.float32)))
    return out


def turned(crop: np.ndarray, box: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """The crop turned by ``roll`` degrees (counter-clockwise) about the plate's centre, and the
    bounding box of the plate's turned corners."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), roll, 1.0)
    picture = cv2.warpAffine(crop, m, crop.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    corners = np.array([[box[0], box[1], 1], [box[2], box[1], 1], [box[2], box[3], 1], [box[0], box[3], 1]])
    xy = corners @ m.T
    return picture, np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()], np.float32)


def found_share(net: YoloPlate, plates: list[tuple[np.ndarray, np.ndarray]], roll: float, threshold: float) -> float:
    hits = 0
    for crop, box in plates:
        picture, target = turned(crop, box, roll)
        dets = net.detect(picture, threshold)
        if len(dets) and bool((box_overlap(dets.xyxy, target[None, :])[:, 0] >= MATCH_SHARE).any()):
            hits += 1
    return 100.0 * hits / max(len(plates), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--plate-model", type=Path, action="append", help="ONNX plate net(s) to measure")
    parser.add_argument("--half", default="dev", choices=["all", "dev", "test"])
    parser.add_argument("--rolls", default="-40,-30,-20,-10,0,10,20,30,40")
    args = parser.parse_args()
    folder = args.data / "plates_ro_dashcam"
    if not folder.is_dir():
        print(f"no evaluation data under {args.data}: nothing to measure")
        return 0
    rolls = [float(r) for r in args.rolls.split(",")]
    files = args.plate_model or [Path(model_path("plate_yolov8n_street_int8.onnx")),
                                 Path(model_path("plate_yolov8n_street.onnx"))]
    plates = crops(folder, args.half)
    threshold = DEFAULT_THRESHOLDS["plate"]
    print(f"plates_ro_dashcam `valid`, {args.half} half: {len(plates)} plates, each cut out and turned; "
          f"found at threshold {threshold} (%)\n")
    print("| net | " + " | ".join(f"{r:+g} deg" for r in rolls) + " |")
    print("|---|" + "---:|" * len(rolls))
    for file in files:
        net = YoloPlate(OnnxRuntimeOptions(), model_file=str(file))
        cells = [f"{found_share(net, plates, r, threshold):.1f}" for r in rolls]
        print(f"| {file.name} | " + " | ".join(cells) + " |", flush=True)
    example = math.degrees(math.atan(math.tan(math.radians(22.5)) * math.sin(math.radians(45))))
    print(f"\nAn upright object 22.5 degrees of yaw off the centre of a view looking 45 degrees down is rolled "
          f"by about {example:.0f} degrees in it (atan(tan(yaw offset) * sin(pitch))).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
