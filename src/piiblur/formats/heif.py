"""HEIC/HEIF (pillow-heif) and AVIF (Pillow) writer: the same format, bit depth and mode, EXIF/XMP/ICC kept.

HEIF and AVIF are lossy here (as the inputs almost always are): the picture is re-encoded at quality 60.
The EXIF thumbnail is redrawn from the blurred picture, images embedded in XMP are removed. HEIF
thumbnails, depth maps and auxiliary images are not written again (they are unblurred copies), and
libheif applies the container's rotation/mirror (irot/imir) when decoding, so the output is stored
upright with EXIF orientation 1; the notes say so.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from . import Encoded, SourceImage
from ._scrub import Scrub

FORMATS = ("HEIF", "AVIF")

QUALITY = 60  # about the size of typical camera and phone output


_NOT_PICTURES = frozenset({b"Exif", b"mime", b"uri "})  # item types that hold metadata, not a picture


def stream_warnings(data: bytes) -> list[str]:
    """Image items that nothing shows and nothing searches. libheif lists the top-level images only, and
    pii-blur searches them, their thumbnails and depth maps; what a derived image is made of (grid
    tiles, a gain map's inputs) and auxiliary images (alpha, depth, gain maps, mattes) belong to one. An
    item of any other kind flagged hidden (a whole picture a two-bit edit shows) was copied unsearched."""
    meta = next((box for box in _boxes(data, 0, len(data)) if box[0] == b"meta"), None)
    if meta is None:
        return []
    children = {kind: (start, end) for kind, start, end in _boxes(data, meta[1] + 4, meta[2])}
    items = _items(data, *children.get(b"iinf", (0, 0)))
    shown = {item for item, (_, hidden) in items.items() if not hidden}
    parts = set()
    for kind, source, targets in _references(data, *children.get(b"iref", (0, 0))):
        if kind == b"dimg":  # a derived image's inputs
            parts.update(targets)
        elif kind in (b"thmb", b"auxl"):  # a thumbnail or an auxiliary image of an image
            parts.add(source)
    unseen = sorted(item for item, (kind, _) in items.items()
                    if kind not in _NOT_PICTURES and item not in shown | parts)
    return [f"image item {item} ({items[item][0].decode('latin-1')}) is hidden and part of no image"
            for item in unseen]


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, where its content starts, where it ends) of the ISO base media boxes in ``data[start:end]``."""
    found = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1 and start + 16 <= end:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            break
        found.append((kind, start + header, start + size))
        start += size
    return found


def _items(data: bytes, start: int, end: int) -> dict[int, tuple[bytes, bool]]:
    """The item information box's items: id -> (item type, flagged hidden)."""
    if end - start < 6:
        return {}
    count_size = 2 if data[start] == 0 else 4
    items = {}
    for kind, begin, finish in _boxes(data, start + 4 + count_size, end):
        if kind != b"infe" or finish - begin < 12 or data[begin] < 2:
            continue
        wide = data[begin] >= 3
        item = struct.unpack_from(">I" if wide else ">H", data, begin + 4)[0]
        at = begin + (10 if wide else 8)
        items[item] = (data[at:at + 4], bool(data[begin + 3] & 1))
    return items


def _references(data: bytes, start: int, end: int) -> list[tuple[bytes, int, list[int]]]:
    """The item reference box's references: (type, from item, to items)."""
    if end - start < 4:
        return []
    size, code = (4, ">I") if data[start] else (2, ">H")
    found = []
    for kind, begin, finish in _boxes(data, start + 4, end):
        if finish - begin < size + 2:
            continue
        source = struct.unpack_from(code, data, begin)[0]
        count = struct.unpack_from(">H", data, begin + size)[0]
        targets = [struct.unpack_from(code, data, begin + size + 2 + size * index)[0]
                   for index in range(count) if begin + size + 2 + size * (index + 1) <= finish]
        found.append((kind, source, targets))
    return found


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
