"""Copy the exported plate nets into the package and write their training record next to them.

  python training/ship.py                  # training/out/plate_yolov8n_soup{,_int8}.onnx -> src/piiblur/models

Each file is shipped without its box decoding (``head_split.py``: the runtime decodes only the boxes over
the threshold); the record keeps the sha256 of the full exports too.

The record (``src/piiblur/models/plate_yolov8n_street.json``) is the export's provenance (base weights,
data, seeds, training arguments, per-epoch progress, git commit, versions) plus the sha256 of both shipped
files and ``training/evaluation.json``: how the mixing weight was chosen and what the benchmark measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import onnx  # noqa: E402
from base_weights import sha256  # noqa: E402
from head_split import split  # noqa: E402

MODELS = HERE.parent / "src" / "piiblur" / "models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="plate_yolov8n_soup", help="stem of the files under training/out")
    ap.add_argument("--shipped", default="plate_yolov8n_street", help="stem of the files in the package")
    args = ap.parse_args()

    out = HERE / "out"
    record = json.loads((out / f"{args.name}.json").read_text())
    files, full = {}, {}
    for suffix in ("", "_int8"):
        source, target = out / f"{args.name}{suffix}.onnx", MODELS / f"{args.shipped}{suffix}.onnx"
        onnx.save(split(onnx.load(source)), target)
        files[target.name], full[source.name] = sha256(target), sha256(source)
    record["shipped_files"] = files
    record["head_split"] = {"script": "training/head_split.py", "full_exports": full}
    record["evaluation"] = json.loads((HERE / "evaluation.json").read_text())
    (MODELS / f"{args.shipped}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(files, indent=1))


if __name__ == "__main__":
    main()
