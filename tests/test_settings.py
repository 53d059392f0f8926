"""Settings, the class table, the detector registry and the projections: the pieces a new class,
detector or projection is added to."""

from __future__ import annotations

import json

import numpy as np
import pytest

from piiblur.classes import CLASS_TABLE, CLASSES, Shape
from piiblur.cli import blur_parser
from piiblur.cli_options import settings_from
from piiblur.detections import Detections
from piiblur.detectors import available, register
from piiblur.projections import PLANAR, projection_for
from piiblur.projections.equirect import Equirectangular
from piiblur.settings import Device, Projection, Settings, Status, Views


def test_choices_are_enums_that_read_and_write_as_their_strings():
    settings = Settings(device="cpu", precision="int8", projection="planar", views="fast")
    assert settings.device is Device.CPU and settings.projection is Projection.PLANAR and settings.views is Views.FAST
    assert json.dumps([settings.device, Status.FAILED]) == '["cpu", "failed"]'
    with pytest.raises(ValueError):
        Settings(device="tpu")


def test_every_class_has_its_threshold_and_one_entry_makes_its_option():
    assert Settings(thresholds={"face": 0.5}).thresholds == {"face": 0.5, "plate": 0.25}
    args = blur_parser().parse_args(["in", "out", *(f"{c.flag}=0.7" for c in CLASS_TABLE)])
    assert settings_from(args).thresholds == dict.fromkeys(CLASSES, 0.7)
    assert {c.shape for c in CLASS_TABLE} == {Shape.ELLIPSE, Shape.ROUNDED_RECTANGLE}


def test_a_second_detector_of_one_name_is_refused():
    first = available()["centerface"]
    twin = type("Twin", (), {"name": "centerface", "class_name": "face"})
    with pytest.raises(ValueError, match="two detectors"):
        register(twin)
    assert available()["centerface"] is first
    assert {c.detector for c in CLASS_TABLE} <= set(available())


def test_the_projection_of_an_image():
    assert projection_for(640, 480, b"", Projection.AUTO, Views.STANDARD) is PLANAR
    sphere = projection_for(4000, 2000, b"", Projection.AUTO, Views.FAST)
    assert isinstance(sphere, Equirectangular) and sphere.views is Views.FAST and sphere.name == "equirectangular"
    assert projection_for(4000, 2000, b"", Projection.PLANAR, Views.STANDARD) is PLANAR
    nothing = Detections.empty()
    pixels = np.zeros((20, 40, 3), np.uint8)
    assert not PLANAR.protected(nothing, (20, 40), 1.0).any()
    assert np.array_equal(PLANAR.blur(pixels, nothing, 1.0), pixels)
