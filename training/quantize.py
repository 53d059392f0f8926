"""Quantise a YOLOv8 plate net to 8 bits, calibrated on licence-plate imagery.

    python training/quantize.py --model fp32.onnx --out int8.onnx [--data ../shared/data]
                                [--method minmax|percentile|entropy] [--float-head none|class|all]
                                [--check 8]

The net is quantised as ``tools/make_models.py`` quantises the shipped models (onnxruntime's
``quantize_static``: QDQ, per-channel int8 weights, uint8 activations, YOLOv8's decoding tail in float),
but its activation ranges are calibrated on the ``train`` split of plates_ro_dashcam, and only on it:
every other plate set, and ro ``valid``, measure the result.

Why: calibrated on photographs with no plate, the class logits never rise above 0 there, so their 8-bit
range ends at 0 and every plate score of the int8 net stops at sigmoid(0) = 0.5.

The calibration inputs are what the net sees at run time (``piiblur.planar`` and
``piiblur.detectors.yolo_plate``): RGB scaled to 0-1, at native resolution, padded bottom and right to a
multiple of 32 with grey 114. The plate net's tile is 1536 px, so a 1280x720 dashcam frame is one
1280x736 input; the inputs here are

- 640x640 crops at native resolution, each holding a labelled plate at a random place (most inputs),
- the same, from a 320x320 crop seen at 2x (as ``planar`` shows small images, and as close plates look),
- 640x640 crops that overlap no labelled plate (labels are incomplete: "no labelled plate"),
- a few whole frames, padded as the detector pads them.

The choice is fixed by ``--seed`` and the sorted file names: the same data and arguments give the same
inputs and, with the same onnxruntime, the same file. ``--check N`` then compares fp32 and int8 on N other
train frames through the library's plate detector: best scores and matched boxes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from make_models import quantize  # tools/ is not a package

TILE = 640  # calibration crop, at native resolution
PAD = 114  # YoloPlate pads with grey 114
STRIDE = 32


@dataclass(frozen=True)
class Frame:
    path: Path
    boxes: list[tuple[float, float, float, float]]  # labelled plates, x0 y0 x1 y1


def train_frames(data: Path) -> list[Frame]:
    """plates_ro_dashcam frames of the ``train`` split, sorted by name. Nothing else is ever read."""
    root = data / "plates_ro_dashcam"
    labels = json.loads((root / "labels.json").read_text())
    frames = []
    for name in sorted(labels):
        entries = labels[name]
        if not entries or any(e.get("split") != "train" for e in entries):
            continue
        boxes = [tuple(e["box"]) for e in entries if e.get("class") == "plate"]
        frames.append(Frame(root / "images" / name, boxes))  # type: ignore[arg-type]
    if not frames:
        raise SystemExit(f"no train frames under {root}")
    return frames


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def pad(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, -h % STRIDE), (0, -w % STRIDE), (0, 0)), constant_values=PAD)


def crop_around(rgb: np.ndarray, box: tuple[float, float, float, float], size: int,
                rng: np.random.Generator) -> np.ndarray:
    """A ``size`` crop (padded if the frame is smaller) that holds ``box`` at a random place."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box

    def start(lo: float, hi: float, length: int) -> int:
        first = max(0, int(np.ceil(hi)) - size)  # the box's far edge still inside
        last = min(length - size, int(lo))  # its near edge still inside
        if length <= size:
            return 0
        if first > last:  # box larger than the crop: centre it
            return int(np.clip((lo + hi - size) / 2, 0, length - size))
        return int(rng.integers(first, last + 1))

    x, y = start(x0, x1, w), start(y0, y1, h)
    return pad(rgb[y : y + size, x : x + size])


def crop_without(rgb: np.ndarray, boxes: list[tuple[float, float, float, float]], size: int,
                 rng: np.random.Generator) -> np.ndarray | None:
    """A ``size`` crop that overlaps no labelled box, or None if ten tries find none."""
    h, w = rgb.shape[:2]
    for _ in range(10):
        x, y = int(rng.integers(0, max(1, w - size + 1))), int(rng.integers(0, max(1, h - size + 1)))
        if all(bx1 <= x or bx0 >= x + size or by1 <= y or by0 >= y + size for bx0, by0, bx1, by1 in boxes):
            return pad(rgb[y : y + size, x : x + size])
    return None


def calibration_inputs(frames: list[Frame], rng: np.random.Generator, plates: int, upscaled: int,
                       empty: int, whole: int) -> tuple[list[np.ndarray], set[Path]]:
    """The calibration inputs (RGB uint8, sides multiples of 32) and the frames they came from."""
    with_plates = [f for f in frames if f.boxes]
    order = rng.permutation(len(with_plates))
    used: set[Path] = set()
    inputs: list[np.ndarray] = []
    cursor = 0

    def next_frame() -> Frame:
        nonlocal cursor
        frame = with_plates[order[cursor % len(order)]]
        cursor += 1
        used.add(frame.path)
        return frame

    for _ in range(plates):
        frame = next_frame()
        rgb = load_rgb(frame.path)
        inputs.append(crop_around(rgb, frame.boxes[int(rng.integers(len(frame.boxes)))], TILE, rng))
    for _ in range(upscaled):
        frame = next_frame()
        rgb = load_rgb(frame.path)
        small = crop_around(rgb, frame.boxes[int(rng.integers(len(frame.boxes)))], TILE // 2, rng)
        inputs.append(cv2.resize(small, (TILE, TILE), interpolation=cv2.INTER_LINEAR))
    made = 0
    while made < empty:
        frame = next_frame()
        crop = crop_without(load_rgb(frame.path), frame.boxes, TILE, rng)
        if crop is not None:
            inputs.append(crop)
            made += 1
    for _ in range(whole):
        inputs.append(pad(load_rgb(next_frame().path)))
    return inputs, used


def dataset_inputs(dataset: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` images drawn from a built training dataset's ``train`` split (synthetic plates of every
    style, real ro crops, lettering negatives): never an evaluation image (training/README.md)."""
    files = sorted((dataset / "images" / "train").iterdir())
    pick = sorted(rng.choice(len(files), min(count, len(files)), replace=False))
    return [pad(load_rgb(files[i])) for i in pick]


def check(fp32: Path, int8: Path, frames: list[Frame]) -> None:
    """fp32 against int8 through the library's plate detector on whole frames: per frame the best score
    of each, and over all, the IoU and score change of every fp32 plate's best int8 match."""
    from piiblur.detectors.base import OnnxRuntimeOptions
    from piiblur.detectors.yolo_plate import YoloPlate

    options = OnnxRuntimeOptions(device="cpu")
    nets = {"fp32": YoloPlate(options, str(fp32)), "int8": YoloPlate(options, str(int8))}
    ious, deltas, unmatched = [], [], 0
    for frame in frames:
        rgb = load_rgb(frame.path)
        found = {k: net.detect(rgb, 0.1) for k, net in nets.items()}
        best = {k: float(d.scores.max()) if len(d) else 0.0 for k, d in found.items()}
        print(f"  {frame.path.name:48s} best score fp32 {best['fp32']:.3f}  int8 {best['int8']:.3f}")
        a, b = found["fp32"], found["int8"]
        for box, score in zip(a.xyxy, a.scores, strict=True):
            if score < 0.25:
                continue
            if not len(b):
                unmatched += 1
                continue
            iou = box_iou(box, b.xyxy)
            j = int(iou.argmax())
            if iou[j] < 0.3:
                unmatched += 1
                continue
            ious.append(iou[j])
            deltas.append(float(b.scores[j]) - float(score))
    if ious:
        print(f"  fp32 plates >= 0.25 matched by int8: {len(ious)}, missed {unmatched}; IoU median "
              f"{np.median(ious):.3f} min {np.min(ious):.3f}; score change median {np.median(deltas):+.3f} "
              f"min {np.min(deltas):+.3f} max {np.max(deltas):+.3f}")
    else:
        print(f"  no fp32 plate >= 0.25 matched ({unmatched} missed)")


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the float ONNX plate net")
    parser.add_argument("--out", type=Path, required=True, help="the int8 ONNX file to write")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    parser.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    parser.add_argument("--float-head", choices=["none", "class", "all"], default="none",
                        help="also keep the last class (or class and box) convolutions in float")
    parser.add_argument("--plates", type=int, default=192, help="640 px crops holding a labelled plate")
    parser.add_argument("--upscaled", type=int, default=32, help="320 px crops holding a plate, seen at 2x")
    parser.add_argument("--empty", type=int, default=48, help="640 px crops with no labelled plate")
    parser.add_argument("--whole", type=int, default=16, help="whole frames")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="also calibrate on images of this built dataset's train split (training/build/dataset)")
    parser.add_argument("--dataset-count", type=int, default=96, help="how many of its images (seeded draw)")
    parser.add_argument("--chunk", type=int, default=16, help="inputs calibrated at a time (bounds memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", type=int, default=0, help="compare with fp32 on this many unused train frames")
    args = parser.parse_args()

    frames = train_frames(args.data)
    rng = np.random.default_rng(args.seed)
    inputs, used = calibration_inputs(frames, rng, args.plates, args.upscaled, args.empty, args.whole)
    if args.dataset is not None:
        inputs += dataset_inputs(args.dataset, args.dataset_count, rng)
    chunk = args.chunk if args.chunk and len(inputs) % args.chunk == 0 else 0
    print(f"{len(inputs)} calibration inputs from {len(used)} of {len(frames)} ro train frames; "
          f"method {args.method}, float head {args.float_head}" + ("" if chunk else ", in one pass"))
    start = time.monotonic()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    quantize(args.model, args.out, inputs, normalise=True, method=args.method, percentile=args.percentile,
             float_head=args.float_head, chunk=chunk)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}  sha256={digest}  ({time.monotonic() - start:.0f} s)")
    if args.check:
        rest = [f for f in frames if f.path not in used] or frames
        pick = np.random.default_rng(args.seed + 1).choice(len(rest), min(args.check, len(rest)), replace=False)
        check(args.model, args.out, [rest[i] for i in sorted(pick)])


if __name__ == "__main__":
    main()
