"""HEIC/HEIF (pillow-heif) and AVIF (Pillow) writer: the same format, bit depth and mode, EXIF/XMP/ICC kept.

HEIF and AVIF are lossy here (as the inputs almost always are): the picture is re-encoded at quality 60.
The EXIF thumbnail is redrawn from the blurred picture, images embedded in XMP are removed. HEIF
thumbnails, depth maps and auxiliary images are not written again (they are unblurred copies), and
libheif applies the container's rotation/mirror (irot/imir) when decoding, so the output is stored
upright with EXIF orientation 1; the notes say so.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from . import Encoded, SourceImage
from ._scrub import Scrub

FORMATS = ("HEIF", "AVIF")

QUALITY = 60  # about the size of typical camera and phone output


def _avif_orientation_note(exif: bytes) -> str:
    tags = Image.Exif()
    tags.load(exif)
    if set(tags) <= {ExifTags.Base.Orientation} and tags.get(ExifTags.Base.Orientation, 1) == 1:
        return ("EXIF held only orientation 1 (the default): Pillow's AVIF writer keeps orientation in the "
                "container's irot/imir boxes, so no EXIF block is written")
    return "EXIF re-serialised by Pillow's AVIF writer, its orientation kept in the container's irot/imir boxes"


def encode(source: SourceImage, pixels: np.ndarray) -> Encoded:
    picture = Image.fromarray(pixels) if pixels.dtype != np.uint8 else Image.fromarray(pixels, source.mode)
    info = source.image.info
    notes = [f"re-encoded at quality {QUALITY} ({source.format} stores no reusable quantisation)"]
    scrub = Scrub(picture)
    options: dict[str, Any] = {"format": source.format, "quality": QUALITY, **scrub.pillow_options(info)}
    notes.extend(scrub.notes)
    if options.get("exif") and source.format == "AVIF":
        notes.append(_avif_orientation_note(options["exif"]))
    if source.format == "HEIF":
        depth = int(info.get("bit_depth") or 8)
        if depth > 8:
            notes.append(f"{depth}-bit HEIF written as 8-bit")
        dropped = [f"{len(info[key])} {label}" for key, label in
                   (("thumbnails", "thumbnail(s)"), ("depth_images", "depth image(s)")) if info.get(key)]
        if dropped:
            notes.append(f"HEIF {', '.join(dropped)} removed (unblurred copies)")
        if info.get("original_orientation") not in (None, 1):
            notes.append(f"orientation {info['original_orientation']} applied by libheif; written upright")
    out = io.BytesIO()
    picture.save(out, **options)
    if getattr(source.image, "n_frames", 1) > 1:
        notes.append(f"images after the primary removed ({source.image.n_frames - 1})")
    return Encoded(out.getvalue(), notes)
