"""One image, start to finish: read, detect, merge, blur, write.

``Blurrer`` holds the loaded detectors (load once per worker process) and
turns one input file into one output file plus a ``FileResult`` for the report.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from piiblur import blur as blurring
from piiblur import sphere
from piiblur.detections import CLASSES, Detections
from piiblur.detectors import OnnxRuntimeOptions, load_detectors
from piiblur.formats import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    SourceImage,
    encode_image,
    read_image_bytes,
)
from piiblur.orientation import upright_to_stored
from piiblur.planar import detect_planar
from piiblur.storage import copy_atomic, write_atomic

DEFAULT_THRESHOLDS = {"face": 0.3, "plate": 0.25}
# In a panorama's views, searched at the panorama's full density, distant faces and plates are a few
# pixels and score lower; the views are searched down to this share of each class's threshold (0.15
# for faces by default), and a find under the threshold is kept only when a closer look confirms it
# (sphere.confirm); without the confirmation it would also blur texture in empty landscapes. Measured
# on benchmarks/panorama.py --no-planar (10 panoramas), against two thirds: faces 271 -> 273 of 280
# (16 px 81% -> 85%), plates 69 -> 70 of 115, blur on the bare background 0.676% -> 0.694% of pixels,
# 8% more time; in the real Amsterdam scene it finds a passer-by's face that two thirds missed. A
# share of 0.4 found one more face but doubled the background blur.
PANORAMA_THRESHOLD_SHARE = 0.5


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...] = CLASSES
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    strength: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    device: str = "auto"
    precision: str = "auto"  # int8 models on the CPU, float on a GPU
    threads: int = 0  # onnxruntime threads per worker; 0 = its own choice
    projection: str = "auto"  # auto | equirectangular | planar
    views: str = "standard"  # which set of views of the sphere panoramas are searched in
    # class -> ONNX file to detect it with instead of the shipped model (same inputs and outputs, e.g. a
    # retrained plate net); used as it is, whatever ``precision`` says
    model_files: dict[str, str] = field(default_factory=dict)


@dataclass
class FileResult:
    source: str
    output: str | None
    status: str  # blurred | copied | skipped | failed
    reason: str = ""
    width: int = 0
    height: int = 0
    orientation: int = 1
    projection: str = "planar"
    detections: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    written: bool = False

    def count(self, name: str) -> int:
        return sum(1 for d in self.detections if d["class"] == name)


class Blurrer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        options = OnnxRuntimeOptions(settings.threads, settings.device, settings.precision)
        self.detectors = load_detectors(list(settings.classes), options, settings.model_files)

    def geometry(self, image: SourceImage) -> sphere.Equirect | None:
        """Where the image sits on the sphere, or None for a flat photo."""
        if image.orientation != 1:  # panoramas are stored upright; a turned image is a photo
            return None
        return sphere.equirect_for(*image.size, image.data, self.settings.projection)

    def detect(self, rgb: np.ndarray, geo: sphere.Equirect | None = None) -> Detections:
        """Everything to hide in an upright 8-bit RGB picture, in its pixel coordinates."""
        thresholds = self.settings.thresholds
        if geo is not None:
            sure = {name: thresholds.get(name, DEFAULT_THRESHOLDS[name]) for name in DEFAULT_THRESHOLDS}
            search = {**thresholds, **{name: value * PANORAMA_THRESHOLD_SHARE for name, value in sure.items()}}
            found = sphere.detect_sphere(rgb, geo, self.detectors, search, self.settings.views).above(search)
            return sphere.confirm(rgb, geo, found, self.detectors, sure)
        return detect_planar(rgb, self.detectors, thresholds).above(thresholds)

    def blur(self, pixels: np.ndarray, found: Detections, geo: sphere.Equirect | None) -> np.ndarray:
        if geo is not None:
            return sphere.blur(pixels, found, geo, self.settings.strength)
        return blurring.blur(pixels, found, self.settings.strength)

    def protected(self, found: Detections, shape: tuple[int, int], geo: sphere.Equirect | None) -> np.ndarray:
        """The pixels ``blur`` hides, as a boolean (H, W) mask."""
        if geo is not None:
            return sphere.protected(found, geo, self.settings.strength)
        return blurring.protected(found, shape, self.settings.strength)

    def process(self, source: Path, target: Path | None, label: str | None = None) -> FileResult:
        """Blur ``source`` into ``target``, or copy it unchanged when nothing is found.

        With ``target`` None nothing is written (a dry run).
        """
        name = label or str(source)
        try:
            data = source.read_bytes()
        except OSError as exc:
            return FileResult(name, str(target) if target else None, "failed", f"{exc.strerror or exc}")
        result, encoded = self.process_bytes(data, name, source)
        result.output = str(target) if target else None
        if target is None or result.status == "failed":
            return result
        clock = _Clock(result.timings)
        try:
            if encoded is None:
                copy_atomic(source, target)  # nothing found: the very same file, modification time too
            else:
                write_atomic(target, encoded)
            result.written = True
            clock.lap("write")
        except OSError as exc:
            result.status, result.reason = "failed", f"cannot write {target}: {exc.strerror or exc}"
        return result

    def process_bytes(self, data: bytes, label: str, path: Path | None = None) -> tuple[FileResult, bytes | None]:
        """``process`` without a filesystem: an image file's bytes in, the blurred file's bytes out.

        For images kept in object storage and for the Ray engine. The bytes returned are
        None when nothing was found (status "copied": the caller copies the source as it
        is) or when the image failed; the caller writes, and fills in ``output`` and
        ``written``. What the decoders warn about (corrupt EXIF, a malformed MPO index ...)
        goes into the file's notes rather than onto the terminal.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result, encoded = self._process_bytes(data, label, path)
        result.notes.extend(dict.fromkeys(f"decoder warned: {w.message}" for w in caught))
        return result, encoded

    def _process_bytes(self, data: bytes, label: str, path: Path | None) -> tuple[FileResult, bytes | None]:
        result = FileResult(label, None, "failed")
        clock = _Clock(result.timings)
        try:
            image = read_image_bytes(data, path or Path(label), self.settings.max_pixels)
            clock.lap("decode")
            result.width, result.height = image.size
            result.orientation = image.orientation
            geo = self.geometry(image)
            result.projection = "equirectangular" if geo is not None else "planar"
            found = self.detect(image.upright_rgb(), geo)
            clock.lap("detect")
            result.detections = found.to_records()
            if not len(found):
                result.status = "copied"
                return result, None
            stored = upright_to_stored(found, image.orientation, image.size)
            pixels = self.blur(image.pixels, stored, geo)
            clock.lap("blur")
            encoded = encode_image(image, pixels)
            clock.lap("encode")
            result.notes.extend(encoded.notes)
            result.status = "blurred"
            return result, encoded.data
        except ImageError as exc:
            result.status, result.reason = "failed", str(exc)
        except OSError as exc:
            result.status, result.reason = "failed", f"{exc.strerror or exc}"
        return result, None


class _Clock:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.last, 4)
        self.last = now
