"""A second look at plate finds: a small classifier, plate or not, on a crop around each find.

The plate net fires on shop lettering, bin labels and railings as often as on some far plates, at the
same scores; this net looks again at each find with its surroundings (a car's bumper or a facade) and
is trained only on the training dataset (``build_dataset.py``: plates_ro_dashcam `train` with its
reviewed labels, synthetic plates of every style, synthetic and real street negatives).

    PYTHONPATH=src python training/plate_check.py data  --dataset training/build/dataset8
    PYTHONPATH=src python training/plate_check.py train
    PYTHONPATH=src python training/plate_check.py export   # -> training/out/plate_check.onnx + .json

data: the shipped plate net (int8, as it runs) on every dataset image at 1x and 2x, threshold 0.05; a
find that overlaps a label by 30% of the smaller box is a plate, one that overlaps none (5% of its own
area) is not, the rest are left out. Every label box is a plate sample too (plates the net barely
finds must pass). Each sample gives three crops (``crop``): as found and twice moved and scaled.
train: a small CNN, torch, seeded. export: ONNX, input (n, 3, 64, 64) RGB 0-1, output (n, 1) the plate
logit. Tried at stop 27 and not shipped: training/README.md, "A second look".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from piiblur.detectors.base import OnnxRuntimeOptions  # noqa: E402
from piiblur.detectors.yolo_plate import YoloPlate  # noqa: E402

BUILD = HERE / "build" / "plate_check"

# The crop: a square centred on the find, CONTEXT times its larger side (its height counting ASPECT
# times: a plate is wider than tall), border repeated outside the image, SIZE x SIZE RGB.
SIZE = 64
CONTEXT = 2.0
ASPECT = 3.0


def crop_side(box: np.ndarray) -> float:
    """The side, in image pixels, of the square cut around ``box`` (x1, y1, x2, y2)."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    return max(4.0, CONTEXT * max(w, ASPECT * h))


def crop(rgb: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """The ``SIZE`` x ``SIZE`` square of side ``side`` centred on (cx, cy) of ``rgb`` (border repeated)."""
    n = max(2, round(side))
    patch = cv2.getRectSubPix(np.ascontiguousarray(rgb), (n, n), (cx, cy))
    interpolation = cv2.INTER_AREA if n > SIZE else cv2.INTER_LINEAR
    return cv2.resize(patch, (SIZE, SIZE), interpolation=interpolation)


SEED = 20261202


def _labels(path: Path, w: int, h: int) -> np.ndarray:
    if not path.exists():
        return np.zeros((0, 4), np.float32)
    rows = [list(map(float, line.split()[1:5])) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, 4), np.float32)
    a = np.array(rows, np.float32)
    cx, cy, bw, bh = a[:, 0] * w, a[:, 1] * h, a[:, 2] * w, a[:, 3] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intersection / smaller box, intersection / a's box) for every pair of a (n, 4) and b (m, 4)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area = lambda r: ((r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])).clip(1e-6)  # noqa: E731
    return inter / np.minimum(area(a)[:, None], area(b)[None, :]), inter / area(a)[:, None]


def _samples(rgb: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, crop_side(box)
    out = [crop(rgb, cx, cy, side)]
    for _ in range(2):
        s = side * float(np.exp(rng.uniform(-0.3, 0.3)))
        out.append(crop(rgb, cx + rng.uniform(-0.12, 0.12) * s, cy + rng.uniform(-0.12, 0.12) * s, s))
    return out


def build_data(dataset: Path, out: Path) -> None:
    det = YoloPlate(OnnxRuntimeOptions(threads=1, device="cpu", precision="int8"))
    rng = np.random.default_rng(SEED)
    x: list[np.ndarray] = []
    meta: list[tuple[str, str, str, int, float]] = []  # split, part, kind, label, score
    t0 = time.time()
    for split in ("train", "val"):
        files = sorted((dataset / "images" / split).glob("*.jpg"))
        for i, f in enumerate(files):
            part = f.stem.rsplit("_", 1)[0]
            rgb = np.asarray(Image.open(f).convert("RGB"))
            h, w = rgb.shape[:2]
            labels = _labels(dataset / "labels" / split / f"{f.stem}.txt", w, h)
            one = det.detect(rgb, 0.05)
            big = np.asarray(Image.fromarray(rgb).resize((w * 2, h * 2), Image.BILINEAR))
            two = det.detect(big, 0.05)
            boxes = np.concatenate([one.xyxy, two.xyxy / 2])
            scores = np.concatenate([one.scores, two.scores])
            if len(labels) and len(boxes):
                smaller, own = _overlap(boxes, labels)
                best, touch = smaller.max(axis=1), own.max(axis=1)
            else:
                best = touch = np.zeros(len(boxes))
            for box, score, b, t in zip(boxes, scores, best, touch, strict=True):
                label = 1 if b >= 0.3 else 0 if t < 0.05 else -1
                if label < 0:
                    continue
                for c in _samples(rgb, box, rng):
                    x.append(c)
                    meta.append((split, part, "find", label, float(score)))
            for box in labels:
                for c in _samples(rgb, box, rng):
                    x.append(c)
                    meta.append((split, part, "label", 1, 1.0))
            if i % 200 == 0:
                print(f"{split} {i}/{len(files)} {len(x)} crops {time.time() - t0:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "crops.npz", x=np.stack(x), split=np.array([m[0] for m in meta]),
                        part=np.array([m[1] for m in meta]), kind=np.array([m[2] for m in meta]),
                        label=np.array([m[3] for m in meta], np.int8), score=np.array([m[4] for m in meta], np.float32))
    counts = {}
    for split, part, kind, label, _ in meta:
        key = f"{split}/{part}/{kind}/{'plate' if label else 'not'}"
        counts[key] = counts.get(key, 0) + 1
    (out / "counts.json").write_text(json.dumps(dict(sorted(counts.items())), indent=1))
    print(json.dumps(dict(sorted(counts.items())), indent=1))


def _net():
    import torch.nn as nn

    def block(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), *block(64, 96),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, 1))


def train(out: Path, epochs: int, neg_weight: float) -> None:
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    d = np.load(out / "crops.npz")
    x, y, split = d["x"], d["label"].astype(np.float32), d["split"]
    tr, va = split == "train", split == "val"
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (int(tr.sum()) // 128 + 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    rng = np.random.default_rng(SEED)
    xt = torch.from_numpy(x[tr]).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y[tr])
    pos = float(yt.mean())
    print(f"train {int(tr.sum())} crops ({pos:.2f} plates), held-out {int(va.sum())}")
    log = []
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(xt)))
        total = 0.0
        for k in range(0, len(order), 128):
            idx = order[k:k + 128]
            xb = xt[idx].float() / 255.0
            if rng.random() < 0.5:
                xb = xb.flip(3)
            # brightness, contrast and colour, per crop
            gain = torch.exp(torch.empty(len(xb), 1, 1, 1).uniform_(-0.5, 0.4))
            tint = torch.exp(torch.empty(len(xb), 3, 1, 1).uniform_(-0.1, 0.1))
            mean = xb.mean(dim=(1, 2, 3), keepdim=True)
            contrast = torch.exp(torch.empty(len(xb), 1, 1, 1).uniform_(-0.4, 0.3))
            xb = ((xb - mean) * contrast + mean) * gain * tint
            xb = (xb + torch.randn_like(xb) * 0.02 * torch.rand(len(xb), 1, 1, 1)).clamp(0, 1)
            yb = yt[idx]
            logit = net(xb).squeeze(1)
            weight = torch.where(yb > 0, torch.ones_like(yb), torch.full_like(yb, neg_weight))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, yb, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        metrics = evaluate(net, x[va], y[va])
        metrics.update(epoch=epoch + 1, loss=total / len(xt))
        log.append(metrics)
        print(json.dumps(metrics), flush=True)
    torch.save({"state": net.state_dict(), "log": log, "epochs": epochs, "neg_weight": neg_weight,
                "seed": SEED}, out / "plate_check.pt")


def evaluate(net, x: np.ndarray, y: np.ndarray) -> dict:
    import torch

    net.eval()
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(net(torch.from_numpy(x[k:k + 512]).permute(0, 3, 1, 2).float() / 255.0))
                       for k in range(0, len(x), 512)]).squeeze(1).numpy()
    res = {}
    for t in (0.02, 0.05, 0.1, 0.2):
        res[f"plates kept at {t}"] = round(float((p[y > 0] >= t).mean()), 4)
        res[f"others dropped at {t}"] = round(float((p[y == 0] < t).mean()), 4)
    return res


def export(out: Path, onnx_out: Path) -> None:
    import torch

    ckpt = torch.load(out / "plate_check.pt", weights_only=False)
    net = _net()
    net.load_state_dict(ckpt["state"])
    net.eval()
    onnx_out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, SIZE, SIZE), str(onnx_out), input_names=["crops"],
                      output_names=["logit"], dynamic_axes={"crops": {0: "n"}, "logit": {0: "n"}}, opset_version=17,
                      dynamo=False)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {
        "what": "plate check: plate or not, on a crop around a plate find (training/plate_check.py, crop)",
        "data": "training/build/dataset8 (build_dataset.py, seed 20261130, reviewed labels): plates_ro_dashcam "
                "`train` only, synthetic plates, synthetic and reviewed real negatives; "
                + json.dumps(json.loads((out / "counts.json").read_text())),
        "not used": "plates_openalpr_us, plates_openalpr_eu, plates_openimages, plates_ro_dashcam `valid`, pano360",
        "seed": ckpt["seed"], "epochs": ckpt["epochs"], "neg_weight": ckpt["neg_weight"], "log": ckpt["log"],
        "commit": commit, "sha256": hashlib.sha256(onnx_out.read_bytes()).hexdigest(),
        "licence": "AGPL-3.0-or-later (trained here)",
    }
    onnx_out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["data", "train", "export"])
    ap.add_argument("--dataset", type=Path, default=HERE / "build" / "dataset8")
    ap.add_argument("--out", type=Path, default=BUILD)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--neg-weight", type=float, default=1.0)
    ap.add_argument("--onnx", type=Path, default=HERE / "out" / "plate_check.onnx")
    a = ap.parse_args()
    if a.step == "data":
        build_data(a.dataset, a.out)
    elif a.step == "train":
        train(a.out, a.epochs, a.neg_weight)
    else:
        export(a.out, a.onnx)


if __name__ == "__main__":
    main()
