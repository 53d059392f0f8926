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


def test_plate_boxes_are_decoded_from_the_bins_at_each_anchor_of_each_level() -> None:
    """The shipped plate net ends before its box decoding: the decoder places each anchor by level
    (strides 8, 16, 32, row by row) and reads each side's distance from its 16 bins."""
    from piiblur.detectors.yolo_plate import _boxes

    width, height = 96, 64  # anchors: 12x8 at stride 8, then 6x4 at 16, then 3x2 at 32
    anchors = np.array([13, 96 + 7, 96 + 24 + 5])
    centres = np.array([[12, 12], [24, 24], [80, 48]], float)  # (col, row) + 0.5, times the stride
    strides = np.array([8, 16, 32], float)
    sides = np.array([[1, 2, 3, 4], [0, 5, 2, 1], [15, 0, 7, 3]])  # bin peaked per side: left top right bottom
    bins = np.zeros((64, 3), np.float32)
    for j, peaks in enumerate(sides):
        for side, peak in enumerate(peaks):
            bins[side * 16 + peak, j] = 60.0  # softmax ~ one-hot: the distance is the peak's bin
    expected = np.stack([centres[:, 0] - sides[:, 0] * strides, centres[:, 1] - sides[:, 1] * strides,
                         centres[:, 0] + sides[:, 2] * strides, centres[:, 1] + sides[:, 3] * strides], axis=1)
    assert np.allclose(_boxes(bins, anchors, width, height), expected, atol=1e-3)


def test_the_shipped_plate_net_and_a_full_export_decode_to_the_same_plate() -> None:
    """A full ultralytics export (one output of boxes and scores, as a net in training gives) and the
    shipped form (bins and scores) are both read; one anchor gives one plate either way."""
    from piiblur.detectors.yolo_plate import YoloPlate

    detector = YoloPlate.__new__(YoloPlate)  # decoding only: no session needed
    anchors = 96 + 24 + 6
    bins = np.zeros((1, 64, anchors), np.float32)
    for side, peak in enumerate((2, 1, 2, 1)):
        bins[0, side * 16 + peak, 13] = 60.0
    scores = np.zeros((1, 1, anchors), np.float32)
    scores[0, 0, 13] = 0.9
    full = np.zeros((1, 5, anchors), np.float32)
    full[0, :, 13] = [12, 12, 32, 16, 0.9]  # centre (12, 12), 4x2 strides of 8
    split = detector.decode([bins, scores], 96, 64, 0.5)
    whole = detector.decode([full], 96, 64, 0.5)
    assert len(split) == len(whole) == 1
    assert np.allclose(split.xyxy, [[0, 4, 28, 20]], atol=1e-3) and np.allclose(whole.xyxy, split.xyxy, atol=1e-3)


def test_the_int8_face_net_reads_the_space_to_depth_of_the_picture_and_finds_what_the_float_one_does(
        portrait: np.ndarray) -> None:
    """The shipped int8 face net's first convolution reads 12 channels, the picture's 2x2 space-to-depth
    (tools/make_models.py); the detector fills them in that order, or the net would find no face."""
    from piiblur.detectors.centerface import CenterFace

    int8 = CenterFace(OnnxRuntimeOptions(1, "cpu", "int8"))
    fp32 = CenterFace(OnnxRuntimeOptions(1, "cpu", "fp32"))
    assert int8.space_to_depth and not fp32.space_to_depth
    seen: list[np.ndarray] = []
    run = int8.session.run
    int8.session.run = lambda names, feed: seen.append(next(iter(feed.values()))) or run(names, feed)  # type: ignore
    rgb = np.ascontiguousarray(portrait[:300, :250])  # padded to 320x256
    found, expected = int8.detect(rgb, 0.5), fp32.detect(rgb, 0.5)
    blob = seen[0]
    assert blob.shape == (1, 12, 160, 128)
    assert blob[0, 1 * 4 + 1 * 2 + 0, 10, 20] == rgb[21, 40, 1]  # green, row offset 1, column offset 0
    assert len(found) == len(expected) == 1
    assert np.abs(found.xyxy - expected.xyxy).max() < 6
