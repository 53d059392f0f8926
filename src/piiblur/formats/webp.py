"""WebP writer: lossless stays lossless (exact pixels), lossy is written at quality 90; EXIF, ICC and XMP kept
(scrubbed of embedded images like every format's)."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image

from . import Encoded, SourceImage, frame_options, later_images
from ._scrub import Scrub

FORMATS = ("WEBP",)

LOSSY_QUALITY = 90


def riff_chunks(data: bytes, pos: int = 12) -> list[tuple[bytes, bytes]]:
    """The (fourcc, data) chunks from ``pos`` on (12: the top level of a WebP RIFF file), in order."""
    found: list[tuple[bytes, bytes]] = []
    while pos + 8 <= len(data):
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        found.append((fourcc, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return found


def is_lossless(data: bytes) -> bool:
    """True when the (first) image bitstream is VP8L, lossless, rather than VP8, lossy."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    for fourcc, payload in riff_chunks(data):
        if fourcc == b"ANMF":  # an animation frame: 16 bytes of frame header, then the frame's chunks
            return any(inner == b"VP8L" for inner, _ in riff_chunks(payload, 16))
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
    return False


def encode(source: SourceImage, pixels: np.ndarray, later: list[np.ndarray] | None = None) -> Encoded:
    picture = Image.fromarray(pixels, source.mode)
    info = source.image.info
    lossless = is_lossless(source.data)
    options: dict[str, Any] = {"format": "WEBP"}
    if lossless:
        options.update(lossless=True, exact=True)
        notes = ["re-encoded losslessly, like the input"]
    else:
        options["quality"] = LOSSY_QUALITY
        notes = [f"re-encoded lossy at quality {LOSSY_QUALITY} (the input's quality is not recorded in WebP)"]
    scrub = Scrub(picture)
    options.update(scrub.pillow_options(info))
    notes.extend(scrub.notes)
    frames = later_images(source, later)
    options.update(frame_options(source, frames))
    if "background" in info and frames:
        options["background"] = info["background"]
    out = io.BytesIO()
    picture.save(out, **options)
    if frames:
        notes.append(f"all {len(frames) + 1} animation frames searched and written back")
    return Encoded(out.getvalue(), notes)
