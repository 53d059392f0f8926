"""A copy of the training dataset whose labels also hold the shipped net's own confident finds.

plates_ro_dashcam's labels are incomplete (parked and side cars are often unlabelled), so a crop of a
real frame teaches the net that some real plates are background: each fine-tuning run forgot plates it
used to find (training/README.md). Here every image of the chosen parts is run through a teacher net
(by default the shipped fp32 mix, through piiblur's own ``YoloPlate``), and each teacher detection of at
least ``--conf`` that overlaps no label is added as a label. Images of the ``neg`` part (synthetic
backgrounds with street lettering) keep no labels: the teacher's finds there are the false blurs the
training must remove. Images are hard links to the source dataset (same bytes); only labels change.

  PYTHONPATH=src .venv-train/bin/python training/pseudo_labels.py --out training/build/dataset_pl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from quick_eval import detector, iou  # noqa: E402

# real ro frames (crops, downscaled, with a pasted plate, in a view of the sphere); not "neg" nor "mixed":
# their backgrounds are synthetic, so every plate there is labelled and the teacher's finds are false
PARTS = ("real", "realdown", "synth", "sphere")


def yolo_rows(path: Path) -> list[list[float]]:
    return [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=HERE / "build" / "dataset")
    ap.add_argument("--out", type=Path, default=HERE / "build" / "dataset_pl")
    ap.add_argument("--teacher", type=Path, default=REPO / "src" / "piiblur" / "models" / "plate_yolov8n_street.onnx")
    ap.add_argument("--conf", type=float, default=0.4)
    ap.add_argument("--repeat", action="append", default=[], metavar="PART=N",
                    help="list the train images of PART N times (e.g. neg=3: more weight on the lettering negatives)")
    ap.add_argument("--overlap", type=float, default=0.1, help="a find overlapping a label by this IoU is that label")
    args = ap.parse_args()

    det = detector(args.teacher)
    if args.out.exists():
        shutil.rmtree(args.out)
    added: dict[str, dict[str, int]] = {}
    for split in ("train", "val"):
        (args.out / "images" / split).mkdir(parents=True)
        (args.out / "labels" / split).mkdir(parents=True)
        for img in sorted((args.src / "images" / split).iterdir()):
            os.link(img, args.out / "images" / split / img.name)
            rows = yolo_rows(args.src / "labels" / split / (img.stem + ".txt"))
            part = img.stem.split("_")[0]
            count = added.setdefault(f"{split}/{part}", {"images": 0, "labels": 0, "added": 0})
            count["images"] += 1
            count["labels"] += len(rows)
            if part in PARTS:
                rgb = np.asarray(Image.open(img).convert("RGB"))
                h, w = rgb.shape[:2]
                found = det.detect(rgb, args.conf)
                gt = np.array([[(x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h]
                               for _, x, y, bw, bh in rows]).reshape(-1, 4)
                for box in found.xyxy:
                    if len(gt) and iou(box[None], gt).max() >= args.overlap:
                        continue
                    x0, y0, x1, y1 = (float(v) for v in box)
                    rows.append([0, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
                    count["added"] += 1
            text = "".join(f"{int(c)} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n" for c, x, y, bw, bh in rows)
            (args.out / "labels" / split / (img.stem + ".txt")).write_text(text)
    repeat = {part: int(n) for part, n in (r.split("=") for r in args.repeat)}
    listed = [str(img.resolve().parent / img.name) for img in sorted((args.out / "images" / "train").iterdir())
              for _ in range(repeat.get(img.stem.split("_")[0], 1))]
    (args.out / "train.txt").write_text("\n".join(listed) + "\n")
    (args.out / "data.yaml").write_text(
        f"path: {args.out.resolve()}\ntrain: train.txt\nval: images/val\nnames:\n  0: License_Plate\n")
    record = {"source": str(args.src), "teacher": str(args.teacher), "conf": args.conf,
              "overlap": args.overlap, "parts": PARTS, "repeat": repeat, "counts": added}
    (args.out / "pseudo_labels.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(added, indent=1))


if __name__ == "__main__":
    main()
