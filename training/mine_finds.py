"""The shipped plate net's finds on plates_ro_dashcam `train` frames that overlap no label, for review by eye.

plates_ro_dashcam labels one or two plates a frame and leaves the rest (parked and side cars) unlabelled;
a net trained on such frames learns that real plates are background. This lists every plate find of the
shipped int8 net at ``--threshold`` (through piiblur's own tile pyramid) that overlaps no label by 30% of
the smaller box, and draws contact sheets (a crop with context per find, numbered, the find in red) so a
person can mark each: plate, not_plate or unsure. The marks go into training/ro_train_review.json (see
its "what"), which build_dataset.py reads. Only `train` frames are read; `valid` stays for measuring.

  PYTHONPATH=src .venv/bin/python training/mine_finds.py --out training/build/mined
  # look at training/build/mined/sheet_*.png, then write the verdicts (training/README.md, "Run 8")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from build_dataset import find_data  # noqa: E402

from piiblur.detections import box_overlap  # noqa: E402
from piiblur.formats import read_image  # noqa: E402
from piiblur.pipeline import Blurrer, Settings  # noqa: E402

TILE_W, TILE_H, COLUMNS, ROWS = 200, 140, 6, 5


def unlabelled(found: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which finds overlap no label by 30% of the smaller of the two boxes."""
    if not len(labels) or not len(found):
        return np.ones(len(found), bool)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    smaller = np.minimum(area(found)[:, None], area(labels)[None, :])
    return ~(box_overlap(found, labels) >= 0.3 * smaller).any(axis=1)


def sheet(finds: list[dict], images: Path, start: int, path: Path) -> None:
    page = Image.new("RGB", (TILE_W * COLUMNS, (TILE_H + 14) * ROWS), "white")
    draw = ImageDraw.Draw(page)
    for k, find in enumerate(finds):
        picture = Image.open(images / find["image"]).convert("RGB")
        x1, y1, x2, y2 = find["box"]
        side = max(3 * (x2 - x1), 5 * (y2 - y1), 60)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        window = (cx - side * 0.72, cy - side / 2, cx + side * 0.72, cy + side / 2)
        crop = picture.crop(tuple(int(v) for v in window)).resize((TILE_W - 4, TILE_H - 4))
        sx, sy = (TILE_W - 4) / (window[2] - window[0]), (TILE_H - 4) / (window[3] - window[1])
        ImageDraw.Draw(crop).rectangle(((x1 - window[0]) * sx - 2, (y1 - window[1]) * sy - 2,
                                        (x2 - window[0]) * sx + 2, (y2 - window[1]) * sy + 2), outline=(255, 0, 0))
        x, y = (k % COLUMNS) * TILE_W, (k // COLUMNS) * (TILE_H + 14)
        page.paste(crop, (x + 2, y + 14))
        draw.text((x + 2, y), f"#{start + k} {find['score']:.2f}", fill="black")
    page.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "build" / "mined")
    ap.add_argument("--threshold", type=float, default=0.1)
    args = ap.parse_args()
    data = find_data(args.data) / "plates_ro_dashcam"
    labels = json.loads((data / "labels.json").read_text())
    blurrer = Blurrer(Settings(classes=("plate",), thresholds={"plate": args.threshold}))
    finds = []
    for name, boxes in sorted(labels.items()):
        if not boxes or any(b.get("split") != "train" for b in boxes):
            continue
        truth = np.array([b["box"] for b in boxes if b["class"] == "plate"], np.float32).reshape(-1, 4)
        found = blurrer.detect(read_image(data / "images" / name).upright_rgb()).of("plate")
        keep = unlabelled(found.xyxy, truth)
        for box, score in zip(found.xyxy[keep], found.scores[keep], strict=True):
            finds.append({"image": name, "box": [round(float(v), 1) for v in box], "score": round(float(score), 3)})
    finds.sort(key=lambda f: (f["image"], f["box"][0]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finds.json").write_text(json.dumps(finds, indent=0))
    per_sheet = COLUMNS * ROWS
    for start in range(0, len(finds), per_sheet):
        sheet(finds[start:start + per_sheet], data / "images", start, args.out / f"sheet_{start // per_sheet:02d}.png")
    print(f"{len(finds)} unlabelled finds at {args.threshold} in {args.out}")


if __name__ == "__main__":
    main()
