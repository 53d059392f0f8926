"""``pii-blur evaluate``: how much of a labelled sample the blur really covers.

A labelled box counts as protected when the blur mask covers at least
``PROTECTED_SHARE`` of it, so a detection that is found but drawn too small
still counts as a miss. A detection counts as false when it overlaps no
labelled box of its class (by ``MATCH_SHARE`` of the smaller of the two).
Figures are per class and per box height.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from piiblur.cli_options import add_detection_options, settings_from
from piiblur.contact_sheet import grid
from piiblur.detections import CLASSES, Detections, box_overlap
from piiblur.formats import ImageError, read_image, read_image_bytes
from piiblur.pipeline import Blurrer
from piiblur.storage import read_bytes

PROTECTED_SHARE = 0.7
MATCH_SHARE = 0.3
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0, 16), ("16-32", 16, 32), ("32-64", 32, 64), ("64-128", 64, 128), (">=128", 128, math.inf),
)


@dataclass
class Miss:
    image: str
    cls: str
    box: list[float]
    coverage: float


@dataclass
class Evaluation:
    images: int = 0
    seconds: float = 0.0
    labelled: dict[tuple[str, str], int] = field(default_factory=dict)  # (class, size bin) -> count
    protected: dict[tuple[str, str], int] = field(default_factory=dict)
    false: dict[str, int] = field(default_factory=dict)  # class -> detections matching no label
    detections: dict[str, int] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def recall(self, cls: str, size: str | None = None) -> tuple[int, int]:
        keys = [k for k in self.labelled if k[0] == cls and (size is None or k[1] == size)]
        return sum(self.protected.get(k, 0) for k in keys), sum(self.labelled[k] for k in keys)

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for cls in CLASSES:
            for size in [None, *(b[0] for b in SIZE_BINS)]:
                hit, total = self.recall(cls, size)
                if total:
                    rows.append({"class": cls, "size": size or "all", "labelled": total, "protected": hit,
                                 "recall": round(hit / total, 4)})
        return {
            "images": self.images,
            "seconds": round(self.seconds, 2),
            "recall": rows,
            "detections": self.detections,
            "false_detections": self.false,
            "false_per_image": {c: round(n / max(self.images, 1), 3) for c, n in self.false.items()},
            "misses": [m.__dict__ for m in self.misses],
            "unreadable": self.unreadable,
        }


def size_bin(height: float) -> str:
    return next(name for name, lo, hi in SIZE_BINS if lo <= height < hi)


def evaluate(blurrer: Blurrer, labels: dict[str, list[dict[str, Any]]], images_dir: Path) -> Evaluation:
    result = Evaluation()
    start = time.perf_counter()
    for name, boxes in sorted(labels.items()):
        try:
            path = images_dir / name
            image = read_image_bytes(read_bytes(path, blurrer.settings.max_bytes), path, blurrer.settings.max_pixels)
        except (ImageError, OSError) as exc:
            result.unreadable.append(f"{name}: {exc}")
            continue
        result.images += 1
        rgb = image.upright_rgb()
        geo = blurrer.geometry(image)
        found = blurrer.detect(rgb, geo)
        shape = rgb.shape[:2]
        _score_image(result, name, boxes, found, lambda d, s=shape, g=geo: blurrer.protected(d, s, g))
    result.seconds = time.perf_counter() - start
    return result


def _score_image(result: Evaluation, name: str, boxes: list[dict[str, Any]], found: Detections,
                 protected: Callable[[Detections], np.ndarray]) -> None:
    for cls in CLASSES:
        truth = np.array([b["box"] for b in boxes if b["class"] == cls], np.float32).reshape(-1, 4)
        dets = found.of(cls)
        result.detections[cls] = result.detections.get(cls, 0) + len(dets)
        mask = protected(dets)  # only this class's blur counts for its labels
        for box in truth:
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            window = mask[max(y1, 0) : max(y2, y1 + 1), max(x1, 0) : max(x2, x1 + 1)]
            coverage = float(window.mean()) if window.size else 0.0
            key = (cls, size_bin(box[3] - box[1]))
            result.labelled[key] = result.labelled.get(key, 0) + 1
            if coverage >= PROTECTED_SHARE:
                result.protected[key] = result.protected.get(key, 0) + 1
            else:
                result.misses.append(Miss(name, cls, [float(v) for v in box], round(coverage, 3)))
        if len(dets):
            inter = box_overlap(dets.xyxy, truth) if len(truth) else np.zeros((len(dets), 0))
            det_area = (dets.widths * dets.heights)[:, None]
            truth_area = ((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]))[None, :]
            share = inter / np.maximum(np.minimum(det_area, truth_area), 1e-6)
            unmatched = int(np.sum(~(share >= MATCH_SHARE).any(axis=1))) if share.size else len(dets)
            result.false[cls] = result.false.get(cls, 0) + unmatched
        else:
            result.false.setdefault(cls, 0)


def check_labels(labels: Any) -> str | None:
    """What is wrong with labels read from JSON, or None: ``{file: [{"class": str, "box": [x1, y1, x2, y2]}]}``."""
    if not isinstance(labels, dict):
        return "expected an object {file: [{class, box}]}"
    for name, boxes in labels.items():
        if not isinstance(boxes, list):
            return f"{name}: expected a list of {{class, box}}"
        for i, entry in enumerate(boxes):
            box = entry.get("box") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
                return f"{name}: entry {i} has no class"
            if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)
                    and box[0] <= box[2] and box[1] <= box[3]):
                return f"{name}: entry {i}: box {box!r} is not [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_table(evaluation: Evaluation, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'class':<6} {'height px':<10} {'labelled':>8} {'protected':>9} {'recall':>7}")
    for row in evaluation.as_dict()["recall"]:
        lines.append(f"{row['class']:<6} {row['size']:<10} {row['labelled']:>8} {row['protected']:>9} "
                     f"{row['recall'] * 100:>6.1f}%")
    for cls in CLASSES:
        if cls in evaluation.false:
            per = evaluation.false[cls] / max(evaluation.images, 1)
            lines.append(f"{cls} detections matching no label: {evaluation.false[cls]} ({per:.2f} per image)")
    lines.append(f"{evaluation.images} images in {evaluation.seconds:.1f} s")
    return "\n".join(lines)


def contact_sheet(evaluation: Evaluation, images_dir: Path, target: Path, cell: int = 160, limit: int = 120) -> bool:
    """A PNG grid of the missed boxes, each with some context and a red outline; none (False) without misses."""
    if not evaluation.misses:
        return False
    tiles: list[np.ndarray] = []
    for miss in evaluation.misses[:limit]:
        rgb = read_image(images_dir / miss.image).upright_rgb()
        x1, y1, x2, y2 = miss.box
        pad = max(x2 - x1, y2 - y1) * 0.6 + 8
        cx0, cy0 = int(max(0, x1 - pad)), int(max(0, y1 - pad))
        cx1, cy1 = int(min(rgb.shape[1], x2 + pad)), int(min(rgb.shape[0], y2 + pad))
        crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
        cv2.rectangle(crop, (int(x1 - cx0), int(y1 - cy0)), (int(x2 - cx0), int(y2 - cy0)), (255, 0, 0), 1)
        scale = (cell - 20) / max(crop.shape[:2])
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST if scale > 1 else
                          cv2.INTER_AREA)
        tile = np.full((cell, cell, 3), 255, np.uint8)
        tile[: crop.shape[0], : crop.shape[1]] = crop
        caption = f"{miss.cls} {int(y2 - y1)}px {miss.image[:14]}"
        cv2.putText(tile, caption, (2, cell - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(target), cv2.cvtColor(grid(tiles, cell, 10), cv2.COLOR_RGB2BGR))
    return True


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="pii-blur evaluate",
        description="Measure recall (share of labelled boxes the blur covers) per class and box size, "
        "and detections that match no label.",
    )
    parser.add_argument("images", type=Path, metavar="IMAGES_DIR")
    parser.add_argument("--labels", type=Path, required=True, help="labels.json: {file: [{class, box}]}")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures and every miss as JSON")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG", help="write a picture of the missed boxes")
    add_detection_options(parser)
    args = parser.parse_args(argv)
    labels = _load_labels(args.labels)
    if labels is None:
        return 2
    if not args.images.is_dir():
        print(f"pii-blur evaluate: images folder not found: {args.images}", file=sys.stderr)
        return 2
    evaluation = evaluate(Blurrer(settings_from(args)), labels, args.images)
    print(format_table(evaluation, f"{args.images}"))
    for line in evaluation.unreadable:
        print(f"error: {line}", file=sys.stderr)
    try:
        if args.json:
            args.json.write_text(json.dumps(evaluation.as_dict(), indent=2) + "\n")
        if args.contact_sheet and not contact_sheet(evaluation, args.images, args.contact_sheet):
            print(f"no misses: no contact sheet written to {args.contact_sheet}")
    except (OSError, ImageError, cv2.error) as exc:
        print(f"pii-blur evaluate: cannot write: {exc}", file=sys.stderr)
        return 1
    return 1 if evaluation.unreadable else 0


def _load_labels(path: Path) -> dict[str, list[dict[str, Any]]] | None:
    """The labels, or None after one line saying what is wrong with them."""
    try:
        labels = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"pii-blur evaluate: cannot read labels {path}: {exc}", file=sys.stderr)
        return None
    problem = check_labels(labels)
    if problem:
        print(f"error: {path}: {problem}", file=sys.stderr)
        return None
    return labels
