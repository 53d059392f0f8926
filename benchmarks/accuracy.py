"""Recall per labelled set and per box size: ``pii-blur evaluate`` over ../shared/data, one table.

    python benchmarks/accuracy.py [--data ../shared/data] [--precision auto|int8|fp32] [--misses DIR]

Prints, for every set with a labels.json, recall per class and box height
(a box counts as protected when the blur covers 70% of it), the detections
that match no label per image, and the time taken.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from piiblur.evaluate import SIZE_BINS, contact_sheet, evaluate
from piiblur.pipeline import Blurrer, Settings

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--precision", default="auto", choices=["auto", "int8", "fp32"])
    parser.add_argument("--misses", type=Path, help="write a contact sheet of the misses of each set here")
    parser.add_argument("--json", type=Path, help="write all figures as JSON")
    args = parser.parse_args()
    sets = sorted(p.parent for p in args.data.glob("*/labels.json")) if args.data.is_dir() else []
    if not sets:
        print(f"no labelled sets under {args.data}: nothing to measure")
        return 0
    blurrer = Blurrer(Settings(precision=args.precision))
    bins = [name for name, _, _ in SIZE_BINS]
    columns = " ".join(f"{b:>13}" for b in [*bins, "all"])
    header = f"{'set':<20} {'class':<6} {columns} {'false/img':>9} {'s/img':>6}"
    print(header)
    print("-" * len(header))
    everything = {}
    for folder in sets:
        labels = json.loads((folder / "labels.json").read_text())
        result = evaluate(blurrer, labels, folder / "images")
        everything[folder.name] = result.as_dict()
        for cls in ("face", "plate"):
            if not result.recall(cls)[1]:
                continue
            cells = []
            for size in [*bins, None]:
                hit, total = result.recall(cls, size)
                cells.append(f"{hit:>4}/{total:<4}{100 * hit / total:>4.0f}%" if total else f"{'-':>13}")
            false = result.false.get(cls, 0) / max(result.images, 1)
            per_image = result.seconds / max(result.images, 1)
            print(f"{folder.name:<20} {cls:<6} " + " ".join(cells) + f" {false:>9.2f} {per_image:>6.2f}")
        if args.misses:
            args.misses.mkdir(parents=True, exist_ok=True)
            contact_sheet(result, folder / "images", args.misses / f"{folder.name}.png")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
