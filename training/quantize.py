"""The int8 twin of an exported plate ONNX, made exactly as the shipped plate_yolov8n_int8.onnx is:
tools/make_models.py's ``quantize`` (QDQ, per-channel int8 weights, uint8 activations, the decoding
tail in float) calibrated on the scikit-image 0.26.0 sample photos at three scales.

  python training/quantize.py training/out/plate_yolov8n_ft.onnx    # -> training/out/plate_yolov8n_ft_int8.onnx
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(HERE))

import make_models  # noqa: E402
from base_weights import sha256  # noqa: E402


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "out" / "plate_yolov8n_ft.onnx")
    target = source.with_name(source.stem + "_int8.onnx")
    wheels = sorted(glob.glob(str(HERE / "build" / "wheels" / "scikit_image-0.26.0-*.whl")))
    if not wheels:
        (HERE / "build" / "wheels").mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d",
                        str(HERE / "build" / "wheels"), "scikit-image==0.26.0"], check=True)
        wheels = sorted(glob.glob(str(HERE / "build" / "wheels" / "scikit_image-0.26.0-*.whl")))
    photos = make_models.calibration_images(Path(wheels[0]))
    make_models.quantize(source, target, photos, normalise=True)
    print(target, sha256(target))
    prov = source.with_suffix(".json")
    if prov.exists():  # record the twin in the exported model's provenance
        d = json.loads(prov.read_text())
        d["int8_twin"] = {"file": target.name, "sha256": sha256(target), "source_sha256": sha256(source),
                          "made_by": "training/quantize.py: tools/make_models.py quantize(), QDQ, per-channel int8 "
                                     "weights, uint8 activations, decoding tail in float, calibrated on the "
                                     "scikit-image 0.26.0 sample photos at 0.5/1/2x"}
        prov.write_text(json.dumps(d, indent=1))


if __name__ == "__main__":
    main()
