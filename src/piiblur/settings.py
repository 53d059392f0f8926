"""Everything the user decides about a run, as one value: ``Settings``, and the choices it holds as Enums."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from piiblur.blur import checked_strength
from piiblur.classes import CLASS_TABLE, CLASSES, DEFAULT_THRESHOLDS
from piiblur.formats import DEFAULT_MAX_PIXELS

# An uncompressed 16-bit RGB TIFF at DEFAULT_MAX_PIXELS is 1.8 GB; a file larger than this is refused unread.
DEFAULT_MAX_BYTES = 2 * 2**30


class Device(StrEnum):
    AUTO = "auto"  # the GPU when onnxruntime has one
    CPU = "cpu"
    CUDA = "cuda"


class Precision(StrEnum):
    AUTO = "auto"  # 8-bit weights on the CPU, float on a GPU
    INT8 = "int8"
    FP32 = "fp32"


class Projection(StrEnum):
    AUTO = "auto"  # GPano, else a 2:1 image at least gpano.MIN_FULL_WIDTH wide, is a full sphere
    EQUIRECTANGULAR = "equirectangular"
    PLANAR = "planar"


class Views(StrEnum):
    """The sets of views of the sphere a panorama is searched in (``projections.view_sets``)."""

    STANDARD = "standard"
    STANDARD_NOBAND = "standard-noband"
    FAST = "fast"
    THOROUGH = "thorough"


class Status(StrEnum):
    """What was done to one image."""

    BLURRED = "blurred"
    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...] = CLASSES
    # the lowest score blurred, per class; classes not given keep their CLASS_TABLE threshold
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    strength: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES  # larger files are refused unread
    device: Device = Device.AUTO
    precision: Precision = Precision.AUTO
    threads: int = 0  # onnxruntime threads per worker; 0 = its own choice
    projection: Projection = Projection.AUTO
    views: Views = Views.STANDARD
    # class -> ONNX file to detect it with instead of the shipped model (same inputs and outputs, e.g. a
    # retrained plate net); used as it is, whatever ``precision`` says
    model_files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked_strength(self.strength)  # ValueError for a strength that leaves faces recognisable
        for name, kind in (("device", Device), ("precision", Precision), ("projection", Projection),
                           ("views", Views)):
            object.__setattr__(self, name, kind(getattr(self, name)))  # ValueError for an unknown choice
        given = self.thresholds
        object.__setattr__(self, "thresholds", {c.name: given.get(c.name, c.threshold) for c in CLASS_TABLE})
