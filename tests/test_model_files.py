"""Pointing a detector at another ONNX file than the shipped one."""

from __future__ import annotations

import numpy as np
import pytest

from piiblur.detectors import OnnxRuntimeOptions, load_detectors
from piiblur.detectors.base import model_path
from piiblur.pipeline import Blurrer, Settings


def test_plate_model_file_is_loaded_as_given() -> None:
    fp32 = model_path("plate_yolov8n_street.onnx")
    blob = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)

    def output(settings: Settings) -> np.ndarray:
        (detector,) = Blurrer(settings).detectors
        return detector.session.run(None, {detector.input_name: blob})[0]  # type: ignore[attr-defined]

    shipped_fp32 = output(Settings(classes=("plate",), precision="fp32", threads=1))
    shipped_int8 = output(Settings(classes=("plate",), precision="int8", threads=1))
    given = output(Settings(classes=("plate",), precision="int8", threads=1, model_files={"plate": fp32}))
    # the file given wins over the precision: the float net, not the 8-bit one
    assert np.array_equal(given, shipped_fp32)
    assert not np.array_equal(given, shipped_int8)


def test_missing_or_misnamed_model_file_is_an_error(tmp_path) -> None:
    options = OnnxRuntimeOptions(threads=1)
    with pytest.raises(FileNotFoundError):
        load_detectors(["plate"], options, {"plate": str(tmp_path / "none.onnx")})
    with pytest.raises(ValueError, match="unknown class"):
        load_detectors(["plate"], options, {"plates": model_path("plate_yolov8n_street.onnx")})


def test_shipped_plate_files_match_their_training_record() -> None:
    import hashlib
    import json
    from pathlib import Path

    record = json.loads(Path(model_path("plate_yolov8n_street.json")).read_text())
    for name, digest in record["shipped_files"].items():
        assert hashlib.sha256(Path(model_path(name)).read_bytes()).hexdigest() == digest, name
    assert record["soup"]["alpha"] == record["evaluation"]["alpha"]
    assert "plates_openalpr_us" in record["data"]["not_used"]
