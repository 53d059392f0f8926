"""Reading images and writing them back in kind.

``read_image`` decodes a file fully (a file that cannot be decoded raises
``ImageError``: it is never passed off as clean). ``encode_image`` writes
blurred pixels back in the source's own format through a plugin: one module
in this package per format, each declaring ``FORMATS`` (Pillow format names)
and ``encode(source, pixels) -> Encoded``. A format without a plugin falls back
to Pillow's own writer for that format.
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from piiblur.orientation import TO_STORED, TO_UPRIGHT

try:  # HEIC/HEIF through libheif; without pillow-heif such files fail as unrecognised
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    pass

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif",
     ".avif", ".bmp", ".gif"}
)
DEFAULT_MAX_PIXELS = 300_000_000  # a 24K x 12K panorama; decompression bombs beyond this are refused
# Frames (animation frames, TIFF pages, a HEIF's images, an MPO's pictures) are searched one by one, at
# about 7 ms each when tiny: 2,000 frames of 8x8 took 14 s, and a file of a million 1x1 frames (tens of MB)
# would take hours; a 10-second animation has a few hundred. More are refused.
MAX_FRAMES = 10_000

# Pillow modes that blur works on directly; anything else is converted first. LAB is blurred with its a and
# b channels (signed in Pillow) moved to unsigned, and written back as LAB.
_NATIVE_MODES = {"RGB", "RGBA", "L", "LA", "CMYK", "I;16", "I;16B", "I;16L", "I", "F", "LAB"}
_LAB_SIGN = np.array([0, 128, 128], np.uint8)
# Formats whose later frames (animation frames, TIFF pages) are decoded, searched, blurred and written back
ANIMATED = frozenset({"GIF", "WEBP", "PNG", "TIFF"})
# Formats whose SourceImage keeps only the opened file as ``image``, not Pillow's decoded copy of the
# picture (4 bytes a pixel: 128 MB of an 8000x4000 panorama, held while it is searched and written).
# Pillow reads everything their writers need (tables, sampling, APPn segments, MPF) when it opens them.
HEADER_ONLY = frozenset({"JPEG", "MPO"})
_ORIENTATION_TAG = 0x0112


class ImageError(Exception):
    """A file that could not be read or written as an image; the message says why."""


@dataclass
class Frame:
    """A frame or page after the first: its pixels (like ``SourceImage.pixels``), mode and Pillow info."""

    pixels: np.ndarray
    mode: str
    info: dict[str, Any]

    def upright_rgb(self, orientation: int) -> np.ndarray:
        picture = _low_range_rgb8(self.pixels, self.mode) or _to_rgb8(_from_pixels(self.pixels, self.mode))
        return np.asarray(picture if orientation == 1 else picture.transpose(TO_UPRIGHT[orientation]))


@dataclass
class SourceImage:
    path: Path
    data: bytes  # the file's bytes as read; never modified
    format: str  # Pillow format name: JPEG, MPO, PNG, TIFF, WEBP, ...
    # first frame, fully decoded (stored pixel grid, unless ``image_upright``); for JPEG and MPO only the
    # file opened (header, tables, metadata), its picture being ``pixels`` (``HEADER_ONLY``)
    image: Image.Image
    pixels: np.ndarray  # native pixels of ``mode`` in the stored grid: (H, W) or (H, W, C)
    mode: str
    orientation: int = 1  # EXIF orientation, 1 to 8
    image_upright: bool = False  # the decoder already turned ``image`` upright (Pillow does, for TIFF)
    later: list[Frame] = field(default_factory=list)  # the frames or pages after the first (ANIMATED formats)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the stored pixel grid."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def upright_rgb(self) -> np.ndarray:
        """The picture as a person sees it: EXIF orientation applied, 8-bit RGB."""
        if self.orientation == 1 and self.mode == "RGB" and self.pixels.dtype == np.uint8:
            return self.pixels  # already upright RGB: no second full-size copy
        low = _low_range_rgb8(self.pixels, self.mode)  # from the stored grid: turned whatever ``image`` is
        if low is not None:
            return np.asarray(low if self.orientation == 1 else low.transpose(TO_UPRIGHT[self.orientation]))
        picture = _from_pixels(self.pixels, self.mode) if self.format in HEADER_ONLY else self.image
        if self.orientation == 1 or self.image_upright:
            return np.asarray(_to_rgb8(picture))
        return np.asarray(_to_rgb8(picture).transpose(TO_UPRIGHT[self.orientation]))


@dataclass
class Encoded:
    data: bytes
    notes: list[str] = field(default_factory=list)  # what was changed besides the pixels


Encoder = Callable[..., Encoded]  # encode(source, pixels) or, for a file with later frames, (source, pixels, later)


def _from_pixels(pixels: np.ndarray, mode: str) -> Image.Image:
    """Pixels as ``read_image`` gives them back into a Pillow image of ``mode``."""
    if mode == "LAB":
        return Image.fromarray(pixels ^ _LAB_SIGN, "LAB")
    if pixels.dtype != np.uint8:
        return Image.fromarray(pixels)
    return Image.fromarray(pixels, mode)



def _low_range_rgb8(pixels: np.ndarray, mode: str) -> Image.Image | None:
    """16-bit samples that use fewer than 15 bits, as 8-bit RGB to search at the range they use: the
    smallest 2**k - 1 that holds the largest sample. 12-bit data stored in 16 bits, as some cameras and
    converters write it, would otherwise be searched as a near-black picture in which no face is found,
    while any viewer that stretches levels shows it. None for other pixels (searched as Pillow converts
    them, as viewers show them)."""
    if pixels.dtype != np.uint16 or mode == "LAB":
        return None
    colour = pixels if pixels.ndim == 2 else pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., 0]
    largest = int(colour.max(initial=0))
    if largest >= 1 << 14:
        return None
    top = (1 << max(largest, 255).bit_length()) - 1
    eight = (colour.astype(np.float32) * (255.0 / top) + 0.5).astype(np.uint8)
    return Image.fromarray(eight if eight.ndim == 3 else np.repeat(eight[..., None], 3, axis=2), "RGB")


def _to_rgb8(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image).astype(np.float32)
        top = 65535.0 if image.mode != "I" else max(float(arr.max()), 1.0)
        return Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> SourceImage:
    return read_image_bytes(Path(path).read_bytes(), Path(path), max_pixels)


def read_image_bytes(data: bytes, path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> SourceImage:
    """``read_image`` for bytes already in memory (from object storage); ``path`` names them in messages."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "?"
            why = refusal(fmt, data)
            if why is not None:
                raise ImageError(f"refused: {why}")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"refused: larger than the pixel limit of {max_pixels:,} pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"cannot decode: {exc}") from None
    frames = getattr(image, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise ImageError(f"refused: a {fmt} of {frames:,} frames or images (at most {MAX_FRAMES:,}: each is "
                         "decoded and searched on its own, and thousands of tiny ones would take hours)")
    orientation = int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)
    if orientation not in TO_UPRIGHT:
        orientation = 1
    turned = _orientation_applied_by_decoder(fmt, image, data)
    if turned:  # keep the stored layout: undo the decoder's turn for the pixels we write back
        orientation = turned
    mode = image.mode
    deep = _deep_colour(fmt, image, data)
    if deep is not None and getattr(image, "n_frames", 1) > 1 and fmt in ANIMATED:
        raise ImageError(f"refused: a {fmt} of {image.n_frames} frames or pages with 16-bit colour cannot be "
                         "written back whole")
    if deep is not None and not turned:  # 16-bit RGB(A): Pillow gives 8 bits, OpenCV keeps all 16
        return SourceImage(Path(path), data, fmt, image, deep, mode, orientation)
    mode, pixels = _work_pixels(image)
    if turned:
        pixels = np.asarray(_from_pixels(pixels, mode).transpose(TO_STORED[turned])).copy()
        if mode == "LAB":
            pixels ^= _LAB_SIGN
    if fmt in HEADER_ONLY and not turned:
        image.close()
        with warnings.catch_warnings():  # whatever Pillow warns of, it warned of the first time
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))  # the file opened again, undecoded
    source = SourceImage(Path(path), data, fmt, image, pixels, mode, orientation, image_upright=bool(turned))
    if fmt in ANIMATED and getattr(image, "n_frames", 1) > 1:
        source.later = _later_frames(data, image.n_frames, image.width * image.height, max_pixels)
    return source


def _work_pixels(image: Image.Image) -> tuple[str, np.ndarray]:
    """The mode blur works in and the pixels in it: palette, bilevel, YCbCr ... become RGB(A); LAB's a and b
    channels are stored unsigned (offset by 128) so that averaging them is right."""
    mode = image.mode
    if mode not in _NATIVE_MODES:
        has_alpha = image.mode in ("PA", "RGBa", "La") or "transparency" in image.info
        mode = "RGBA" if has_alpha else "RGB"
        return mode, np.asarray(image.convert(mode)).copy()
    pixels = np.asarray(image).copy()
    if mode == "LAB":
        pixels ^= _LAB_SIGN
    return mode, pixels


def _later_frames(data: bytes, count: int, first: int, max_pixels: int) -> list[Frame]:
    """Frames 2 to ``count``, each fully decoded; all frames together stay within ``max_pixels``."""
    frames: list[Frame] = []
    total = first
    with Image.open(io.BytesIO(data)) as image:
        for index in range(1, count):
            try:
                image.seek(index)
                image.load()
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise ImageError(f"cannot decode frame {index + 1} of {count}: {exc}") from None
            total += image.width * image.height
            if total > max_pixels:
                raise ImageError(f"refused: its {count} frames together are larger than the pixel limit of "
                                 f"{max_pixels:,} pixels")
            mode, pixels = _work_pixels(image)
            frames.append(Frame(pixels, mode, dict(image.info)))
    return frames


def _orientation_applied_by_decoder(fmt: str, image: Image.Image, data: bytes) -> int:
    """The orientation (2-8) that the decoder applied to the pixels and dropped from the tags, else 0.

    Pillow turns an oriented TIFF upright while loading it and removes tag 274.
    """
    if fmt != "TIFF" or _ORIENTATION_TAG in getattr(image, "tag_v2", {}):
        return 0
    with Image.open(io.BytesIO(data)) as unloaded:
        stored = int(unloaded.tag_v2.get(_ORIENTATION_TAG, 1) or 1)
    return stored if stored in TO_UPRIGHT and stored != 1 else 0


def is_deep_colour(fmt: str, image: Image.Image) -> bool:
    """True for a 16-bit-per-sample RGB(A) PNG or TIFF, which Pillow decodes to 8 bits."""
    if image.mode not in ("RGB", "RGBA"):
        return False
    if fmt == "PNG":
        return image.info.get("bit_depth", 8) == 16 or getattr(image, "_bit_depth", 8) == 16
    if fmt == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _deep_colour(fmt: str, image: Image.Image, data: bytes) -> np.ndarray | None:
    if fmt == "PNG":
        deep = len(data) > 25 and data[12:16] == b"IHDR" and data[24] == 16 and data[25] in (2, 6)
    else:
        deep = is_deep_colour(fmt, image)
    if not deep:
        return None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3 or decoded.shape[:2] != image.size[::-1]:
        return None  # OpenCV cannot: keep Pillow's 8 bits (the writer says so)
    if decoded.shape[2] == 4 and image.mode == "RGBA":
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    elif decoded.shape[2] == 3 and image.mode == "RGB":
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    else:
        return None
    # the same picture as Pillow's 8 bits (no orientation or channel order applied by one and not the other)
    eight = np.asarray(image).astype(np.int32)
    high = (decoded >> 8).astype(np.int32)
    if fmt == "TIFF" and image.tag_v2.get(338) == (1,):  # associated alpha: OpenCV keeps it premultiplied
        eight, high = eight[..., 3], high[..., 3]
    if np.abs(high - eight).max(initial=0) > 1:
        return None
    return decoded


def _plugins() -> dict[str, Encoder]:
    """Each format's plugin module (one per format family): its writer, ``encode``, and optionally a check
    of the whole stream, ``stream_warnings``, and one made before it is decoded, ``refused``."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = {}
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for name in getattr(module, "FORMATS", ()):
                _PLUGINS[name] = module.encode
                if hasattr(module, "stream_warnings"):
                    _STREAM_CHECKS[name] = module.stream_warnings
                if hasattr(module, "refused"):
                    _REFUSALS[name] = module.refused
    return _PLUGINS


_PLUGINS: dict[str, Encoder] | None = None
_STREAM_CHECKS: dict[str, Callable[[bytes], list[str]]] = {}
_REFUSALS: dict[str, Callable[[bytes], str | None]] = {}


def refusal(fmt: str, data: bytes) -> str | None:
    """Why a stream of format ``fmt`` (Pillow's name) is refused before any decoder reads it (the format
    plugin's ``refused``: a file built to make decoding take hours), or None."""
    _plugins()
    check = _REFUSALS.get(fmt)
    return check(data) if check is not None else None


def encode_image(source: SourceImage, pixels: np.ndarray, later: list[np.ndarray] | None = None) -> Encoded:
    """Encode ``pixels`` (same shape and mode as ``source.pixels``) in the source's format; ``later``, the
    pixels of the frames after the first (like ``source.later``'s), for a file that has them: a file with
    later frames is written with all of them, or not at all."""
    encoder = _plugins().get(source.format, _encode_with_pillow)
    if source.later and (later is None or len(later) != len(source.later)):
        raise ValueError("encode_image needs the pixels of every later frame")
    if source.mode == "LAB":
        pixels = pixels ^ _LAB_SIGN
    try:
        return encoder(source, pixels, later) if source.later else encoder(source, pixels)
    except ImageError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"cannot write {source.format}: {exc}") from exc


def stream_warnings(source: SourceImage) -> list[str]:
    """What the format's own check of the whole stream warns of (``stream_warnings(data)`` in its plugin):
    picture data that Pillow's decoder does not read, as it stops at the rows the header declares."""
    _plugins()
    check = _STREAM_CHECKS.get(source.format)
    return check(source.data) if check is not None else []


def later_images(source: SourceImage, later: list[np.ndarray] | None) -> list[Image.Image]:
    """The later frames' blurred pixels as Pillow images, each in its frame's mode."""
    return [_from_pixels(pixels, frame.mode) for pixels, frame in zip(later or [], source.later, strict=True)]


def frame_options(source: SourceImage, images: list[Image.Image]) -> dict[str, Any]:
    """Pillow's save options writing ``images`` after the first frame, with the input's durations and loop."""
    if not images:
        return {}
    infos = [source.image.info, *(frame.info for frame in source.later)]
    options: dict[str, Any] = {"save_all": True, "append_images": images}
    if any("duration" in info for info in infos):
        options["duration"] = [info.get("duration", 0) for info in infos]
    if "loop" in source.image.info:
        options["loop"] = source.image.info["loop"]
    return options


def _encode_with_pillow(source: SourceImage, pixels: np.ndarray, later: list[np.ndarray] | None = None) -> Encoded:
    from ._scrub import Scrub  # here: the plugin modules import this package

    out = io.BytesIO()
    image = _from_pixels(pixels, source.mode)
    scrub = Scrub(image)
    params = scrub.pillow_options(source.image.info, ("icc_profile", "exif", "dpi", "xmp"))
    frames = later_images(source, later)
    params.update(frame_options(source, frames))
    if frames and source.format == "GIF" and any(f.mode in ("RGBA", "LA") for f in [image, *frames]):
        params["disposal"] = 2  # whole frames: each drawn on a cleared canvas
    image.save(out, format=source.format, **params)
    notes = [f"written by Pillow's generic {source.format} writer", *scrub.notes]
    if frames:
        notes.append(f"all {len(frames) + 1} frames searched and written back")
    return Encoded(out.getvalue(), notes)
