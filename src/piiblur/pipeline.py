"""One image, start to finish: decode, detect, merge, blur, encode; bytes in, bytes out, no I/O.

``Blurrer`` holds the loaded detectors (load once per worker process) and
turns one image file's bytes into the blurred file's bytes plus a
``FileResult`` for the report; ``piiblur.job`` reads and writes them. The
image's projection (``piiblur.projections``) decides how it is searched and
blurred.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from piiblur import native_stderr
from piiblur.detections import Detections
from piiblur.detectors import OnnxRuntimeOptions, load_detectors
from piiblur.detectors.base import release_shared_arena
from piiblur.formats import (
    ImageError,
    SourceImage,
    encode_image,
    read_image_bytes,
    stream_warnings,
)
from piiblur.formats._embedded import decode, embedded_images
from piiblur.job import Job, process_job
from piiblur.orientation import (
    embedded_turn,
    embedded_upright,
    later_frames_orientation,
    search_both_ways,
    upright_to_stored,
)
from piiblur.projections import Projection, projection_for
from piiblur.projections.equirect import Equirectangular
from piiblur.projections.planar import PLANAR
from piiblur.projections.sphere_geometry import Equirect
from piiblur.results import FileResult
from piiblur.settings import DEFAULT_MAX_BYTES, DEFAULT_THRESHOLDS, Settings, Status

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_THRESHOLDS", "Blurrer", "FileResult", "Settings"]


class Blurrer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        options = OnnxRuntimeOptions(settings.threads, settings.device, settings.precision)
        self.detectors = load_detectors(list(settings.classes), options, settings.model_files)

    def projection(self, image: SourceImage, notes: list[str] | None = None) -> Projection:
        """How the image is searched and blurred (GPano ignored is noted in ``notes``)."""
        if image.orientation != 1:  # panoramas are stored upright; a turned image is a photo
            return PLANAR
        return projection_for(*image.size, image.data, self.settings.projection, self.settings.views, notes)

    # the library's calls, by a panorama's geometry (None for a flat photo) -----------------------
    def geometry(self, image: SourceImage, notes: list[str] | None = None) -> Equirect | None:
        """Where the image sits on the sphere, or None for a flat photo (GPano ignored is noted in ``notes``)."""
        return getattr(self.projection(image, notes), "geo", None)

    def detect(self, rgb: np.ndarray, geo: Equirect | None = None) -> Detections:
        """Everything to hide in an upright 8-bit RGB picture, in its pixel coordinates."""
        return self._projection_of(geo).detect(rgb, self.detectors, self.settings.thresholds)

    def blur(self, pixels: np.ndarray, found: Detections, geo: Equirect | None) -> np.ndarray:
        return self._projection_of(geo).blur(pixels, found, self.settings.strength)

    def protected(self, found: Detections, shape: tuple[int, int], geo: Equirect | None) -> np.ndarray:
        """The pixels ``blur`` hides, as a boolean (H, W) mask."""
        return self._projection_of(geo).protected(found, shape, self.settings.strength)

    def _projection_of(self, geo: Equirect | None) -> Projection:
        return PLANAR if geo is None else Equirectangular(geo, self.settings.views)

    def process(self, source: Path, target: Path | None, label: str | None = None) -> FileResult:
        """Blur ``source`` into ``target``, or copy it unchanged when nothing is found; with ``target`` None
        nothing is written (a dry run). The batch's own path (``piiblur.job``), for one local file."""
        job = Job(source, target if target is not None else source, label or str(source))
        return process_job(self, job, dry_run=target is None).result

    def process_bytes(self, data: bytes, label: str, path: Path | None = None) -> tuple[FileResult, bytes | None]:
        """``process`` without a filesystem: an image file's bytes in, the blurred file's bytes out.

        For images kept in object storage and for the Ray engine. The bytes returned are
        None when nothing was found (status "copied": the caller copies the source as it
        is) or when the image failed; the caller writes, and fills in ``output`` and
        ``written``. What the decoders warn about (corrupt EXIF, a malformed MPO index ...)
        goes into the file's notes rather than onto the terminal.
        """
        native: list[str] = []
        with warnings.catch_warnings(record=True) as caught, native_stderr.captured(native):
            warnings.simplefilter("always")
            result, encoded = self._process_bytes(data, label, path)
        result.notes.extend(dict.fromkeys(f"decoder warned: {w.message}" for w in caught))
        result.notes.extend(f"a C library said: {line}" for line in native)
        return result, encoded

    def _process_bytes(self, data: bytes, label: str, path: Path | None) -> tuple[FileResult, bytes | None]:
        result = FileResult(label, None, Status.FAILED)
        clock = _Clock(result.timings)
        try:
            image = read_image_bytes(data, path or Path(label), self.settings.max_pixels)
            clock.lap("decode")
            result.width, result.height = image.size
            result.orientation = image.orientation
            projection = self.projection(image, result.notes)
            result.projection = projection.name
            founds = self._detect_frames(image, projection, result)
            release_shared_arena(self.detectors)
            if not any(len(found) for found in founds) and not self._embedded_show_something(image, result) \
                    and not _damaged(image, result):
                clock.lap("detect")
                result.status = Status.COPIED
                return result, None
            clock.lap("detect")
            pixels = self._blur_frames(image, founds, projection)
            clock.lap("blur")
            encoded = encode_image(image, pixels[0], pixels[1:])
            clock.lap("encode")
            result.notes.extend(encoded.notes)
            result.status = Status.BLURRED
            return result, encoded.data
        except ImageError as exc:
            result.status, result.reason = Status.FAILED, str(exc)
        except OSError as exc:
            result.status, result.reason = Status.FAILED, f"{exc.strerror or exc}"
        return result, None


    def _detect(self, rgb: np.ndarray, projection: Projection, orientation: int = 1) -> Detections:
        """What an upright picture shows; one stored turned (``orientation``) is also searched as stored."""
        return search_both_ways(lambda picture: projection.detect(picture, self.detectors, self.settings.thresholds),
                                rgb, orientation)

    def _detect_frames(self, image: SourceImage, projection: Projection, result: FileResult) -> list[Detections]:
        """What every frame shows (one frame but for animations and multi-page TIFFs); the records say which."""
        founds = [self._detect(image.upright_rgb(), projection, image.orientation)]
        result.detections = founds[0].to_records()
        for index, frame in enumerate(image.later, start=2):
            frame_projection = projection if frame.pixels.shape[:2] == image.pixels.shape[:2] else PLANAR
            turn = later_frames_orientation(image)
            found = self._detect(frame.upright_rgb(turn), frame_projection, turn)
            founds.append(found)
            result.detections.extend({**record, "frame": index} for record in found.to_records())
        return founds

    def _blur_frames(self, image: SourceImage, founds: list[Detections], projection: Projection) -> list[np.ndarray]:
        """Every frame's pixels, blurred where something was found."""
        frames = [image.pixels, *(frame.pixels for frame in image.later)]
        blurred: list[np.ndarray] = []
        for pixels, found in zip(frames, founds, strict=True):
            if not len(found):
                blurred.append(pixels)
                continue
            size = (pixels.shape[1], pixels.shape[0])
            frame_projection = projection if pixels.shape[:2] == image.pixels.shape[:2] else PLANAR
            stored = upright_to_stored(found, later_frames_orientation(image) if blurred else image.orientation, size)
            blurred.append(frame_projection.blur(pixels, stored, self.settings.strength))
        return blurred

    def _embedded_show_something(self, image: SourceImage, result: FileResult) -> bool:
        """Search the images ``image`` carries besides its picture (thumbnails, previews, images in the XMP,
        MPO frames ...). True when one shows something or cannot be searched: the file is then written
        again, its picture unchanged, and the writer's scrub removes or redraws all of them."""
        shown: list[str] = []
        for item in embedded_images(image):
            picture = decode(item)
            if picture is None:
                shown.append(f"{item.where} (it cannot be decoded, so it was not searched)")
                continue
            found = self._detect(embedded_upright(picture, image.orientation), PLANAR,
                                 embedded_turn(picture, image.orientation))
            if len(found):
                shown.append(f"{item.where} ({_summary(found)})")
                result.detections.extend({**record, "embedded": item.where} for record in found.to_records())
        if shown:
            result.notes.append("nothing found in the picture itself, but in what the file carries besides it: "
                                + "; ".join(shown) + "; written again without them")
        return bool(shown)



def _damaged(image: SourceImage, result: FileResult) -> bool:
    """True when the format's check of the whole stream warns (libjpeg reading a JPEG to its end; the
    rows and frames a PNG, GIF or TIFF holds against those its header declares): the file may hold what
    was not searched (rows past the header's, hidden from every decoder but one of a patched header), so
    it is not copied but written again, its picture as it was searched."""
    warned = stream_warnings(image)
    if warned:
        result.notes.append("nothing found, but the whole stream, read to its end, may hold what was not "
                            "searched (" + "; ".join(warned) + "): written again as it was searched, not copied")
    return bool(warned)


def _summary(found: Detections) -> str:
    counts = Counter(record["class"] for record in found.to_records())
    return ", ".join(f"{count} {name}{'s' if count > 1 else ''}" for name, count in sorted(counts.items()))


class _Clock:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.last, 4)
        self.last = now
