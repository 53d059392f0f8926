"""TIFF writer: Pillow (libtiff for compressed files), the same mode and compression, the tags kept.

Descriptive IFD0 tags are carried over (XMP, IPTC, Photoshop, resolution, orientation, ...); the ones that
describe the old layout (strips, tiles, bit depth, predictor, sub-IFDs ...) are left to the writer. Pillow's
libtiff path cannot write the EXIF and GPS sub-IFDs, so they are appended afterwards: the new file's IFD0
is copied to the end with the two pointer entries added, nothing else moving. 16-bit RGB(A) pixels (read
by OpenCV, as Pillow cannot) are written here as one Deflate (or uncompressed) strip with the same tags.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from . import Encoded, SourceImage, frame_options, later_images
from . import _decoded_size as decoded_size
from ._scrub import Scrub
from .jpeg.markers import header_segments, is_frame

FORMATS = ("TIFF",)

EXIF_IFD, GPS_IFD, INTEROP_IFD, PHOTOSHOP, ICC = 0x8769, 0x8825, 0xA005, 34377, 34675
ORIENTATION, XMP, MAKER_NOTE = 274, 700, 0x927C
_LAYOUT_TAGS = {
    256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 330, 338, 339,
    347, 513, 514, 530, 531, 532, EXIF_IFD, GPS_IFD, INTEROP_IFD, ICC,
}  # fmt: skip
_FALLBACK_COMPRESSION = "tiff_adobe_deflate"


_UNCOMPRESSED, _LZW, _JPEG, _PACKBITS, _DEFLATE = 1, 5, 7, 32773, (8, 32946)


def stream_warnings(data: bytes) -> list[str]:
    """Picture data past what a page's header declares, which libtiff does not read (a patched
    ImageLength shows it): more strips or tiles than the page needs, or a strip that holds more rows than
    its share: what an uncompressed, LZW, PackBits or Deflate strip decodes to, or the rows a JPEG strip's
    frame header declares."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            pages = []
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                pages.append(dict(image.tag_v2))
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, TypeError, KeyError, IndexError):
        return []  # pages that do not read fail the file where they are decoded
    return [f"page {number}: {why}" for number, tags in enumerate(pages, start=1) if (why := _hidden_rows(tags, data))]


def _hidden_rows(tags: dict[int, Any], data: bytes) -> str | None:
    try:
        return _count_rows(tags, data)
    except (ArithmeticError, ValueError, TypeError, IndexError):  # tags no decoder could use: it failed there
        return None


def _count_rows(tags: dict[int, Any], data: bytes) -> str | None:
    width, length = int(tags.get(256, 0)), int(tags.get(257, 0))
    bits = tags.get(258, (1,))
    bits = tuple(bits) if isinstance(bits, tuple) else (int(bits),)
    planes = len(bits) if tags.get(284, 1) == 2 else 1
    if 322 in tags and 323 in tags:  # tiles
        tiles = -(-width // int(tags[322])) * -(-length // int(tags[323])) * planes
        offsets = tags.get(324, ())
        return f"{len(offsets)} tiles where {tiles} hold the picture" if len(offsets) > tiles else None
    offsets, counts = tags.get(273, ()), tags.get(279, ())
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    per_strip = max(1, min(int(tags.get(278, length) or length), length))
    strips = -(-length // per_strip)
    if len(offsets) > strips * planes:
        return f"{len(offsets)} strips where {strips * planes} hold the picture"
    row = -(-width * (bits[0] if planes > 1 else sum(bits)) // 8)
    compression = tags.get(259, _UNCOMPRESSED)
    for index, (offset, count) in enumerate(zip(offsets, counts, strict=False)):
        rows = min(per_strip, length - (index % strips) * per_strip)
        need = rows * row
        strip = data[offset:offset + count]
        if compression == _UNCOMPRESSED:
            held = count
        elif compression in _DEFLATE:
            try:
                held = decoded_size.inflated(zlib.decompressobj(), strip, need + 1)
            except zlib.error:
                continue
        elif compression == _LZW:
            held = decoded_size.lzw(strip, 8, need + 1, tiff=True)
        elif compression == _PACKBITS:
            held = decoded_size.packbits(strip, need + 1)
        elif compression == _JPEG:  # a writer may pad the last strip to whole MCUs (16 rows at most)
            declared = _jpeg_rows(strip)
            held = declared * row if declared > -(-rows // 16) * 16 else 0
        else:
            return None
        if held > need:
            return f"strip {index + 1} holds more than its {rows} rows of {width} pixels"
    return None


def _jpeg_rows(strip: bytes) -> int:
    """The rows a JPEG strip's frame header declares (0 when it has none)."""
    try:
        frames = [segment for marker, segment in header_segments(strip)[0] if is_frame(marker)]
    except (ValueError, struct.error):
        return 0
    return struct.unpack_from(">H", frames[0], 5)[0] if frames and len(frames[0]) >= 7 else 0


def _tags(source: SourceImage, scrub: Scrub) -> ImageFileDirectory_v2:
    original = source.image.tag_v2
    tags = ImageFileDirectory_v2()
    with Image.open(io.BytesIO(source.data)) as unloaded:  # tags as in the file, before decoding
        stored = unloaded.tag_v2.get(ORIENTATION)
    if ORIENTATION not in original and stored is not None:
        # Pillow turns such TIFFs upright while loading and drops the tag; read_image turned the pixels
        # back to the stored layout, so the tag is written as it was
        tags[ORIENTATION] = source.orientation if source.image_upright else 1
    for tag in original:
        if tag in _LAYOUT_TAGS:
            continue
        value = original[tag]
        if isinstance(value, bytes):  # Photoshop resources, a private tag: any may hold an image file
            value = scrub.xmp(value) if tag == XMP else scrub.previews(value)
        tags[tag] = value
        if tag in original.tagtype:
            tags.tagtype[tag] = original.tagtype[tag]
    return tags


def _sub_ifds(source: SourceImage, scrub: Scrub) -> dict[int, dict[int, Any]]:
    exif = source.image.getexif()
    found: dict[int, dict[int, Any]] = {}
    for tag in (EXIF_IFD, GPS_IFD):
        if tag in source.image.tag_v2:
            values = {k: scrub.previews(v) if isinstance(v, bytes) else v  # the maker note, any other
                      for k, v in exif.get_ifd(tag).items() if k != INTEROP_IFD}
            if values:
                found[tag] = values
    return found


def append_sub_ifds(data: bytes, sub_ifds: dict[int, dict[int, Any]]) -> bytes:
    """Add sub-IFDs (EXIF, GPS) to a classic TIFF: IFD0 is rewritten at the end with pointers to them."""
    end = "<" if data[:2] == b"II" else ">"
    if not sub_ifds or struct.unpack_from(end + "H", data, 2)[0] != 42:  # nothing to add, or BigTIFF
        return data
    ifh = data[:4] + b"\x00\x00\x00\x00"
    first = struct.unpack_from(end + "I", data, 4)[0]
    count = struct.unpack_from(end + "H", data, first)[0]
    entries = {struct.unpack_from(end + "H", data, first + 2 + 12 * i)[0]: data[first + 2 + 12 * i:first + 14 + 12 * i]
               for i in range(count)}
    following = data[first + 2 + 12 * count:first + 6 + 12 * count]
    out = bytearray(data)
    if len(out) % 2:
        out += b"\x00"
    for tag, values in sub_ifds.items():
        ifd = ImageFileDirectory_v2(ifh, group=tag)
        for key, value in values.items():
            ifd[key] = value
        offset = len(out)
        out += ifd.tobytes(offset)
        if len(out) % 2:
            out += b"\x00"
        entries[tag] = struct.pack(end + "HHII", tag, 4, 1, offset)
    new_first = len(out)
    out += struct.pack(end + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + following
    struct.pack_into(end + "I", out, 4, new_first)
    return bytes(out)


def _save(picture: Image.Image, options: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    picture.save(out, **options)
    return out.getvalue()


def _encode_deep(source: SourceImage, pixels: np.ndarray) -> Encoded:
    """16-bit RGB(A) as a little-endian baseline TIFF: one strip, Deflate unless the input was uncompressed."""
    notes = ["16-bit colour kept"]
    scrub = Scrub(Image.fromarray((pixels[..., :3] >> 8).astype(np.uint8), "RGB"))
    tags = _tags(source, scrub)
    height, width, samples = pixels.shape
    raw = np.ascontiguousarray(pixels.astype("<u2")).tobytes()
    compressed = (source.image.info.get("compression") or "raw") != "raw"
    strip = zlib.compress(raw, 6) if compressed else raw
    if compressed and source.image.info.get("compression") not in ("tiff_adobe_deflate", "tiff_deflate"):
        notes.append(f"written with Deflate compression (the input used {source.image.info.get('compression')})")
    head = b"II*\x00" + struct.pack("<I", 8)
    tags[256], tags[257] = width, height
    tags[258] = (16,) * samples
    tags[259] = 8 if compressed else 1
    tags[262] = 2
    tags[273] = 0  # Pillow's IFD writer adds the end of the IFD and its data: the strip follows them
    tags[277] = samples
    tags[278] = height
    tags[279] = len(strip)
    tags[284] = 1
    tags.tagtype[273] = tags.tagtype[279] = 4  # LONG offsets and counts
    if samples == 4:
        tags[338] = source.image.tag_v2.get(338, (2,))
    if source.image.info.get("icc_profile"):
        tags[ICC] = source.image.info["icc_profile"]
        tags.tagtype[ICC] = 7
    data = append_sub_ifds(head + tags.tobytes(8) + strip, _sub_ifds(source, scrub))
    return Encoded(data, [*notes, *scrub.notes])


def encode(source: SourceImage, pixels: np.ndarray, later: list[np.ndarray] | None = None) -> Encoded:
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return _encode_deep(source, pixels)
    # Pillow infers the 16-bit modes from the dtype but refuses them when named
    picture = Image.fromarray(pixels) if source.mode.startswith("I;16") else Image.fromarray(pixels, source.mode)
    info = source.image.info
    notes: list[str] = []
    scrub = Scrub(picture)
    options: dict[str, Any] = {"format": "TIFF", "tiffinfo": _tags(source, scrub)}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    pages = later_images(source, later)
    options.update(frame_options(source, pages))
    compression = info.get("compression") or "raw"
    if compression in ("jpeg", "tiff_jpeg"):
        options["quality"] = 90
        notes.append("JPEG-compressed TIFF re-encoded at quality 90")
    try:
        data = _save(picture, {**options, "compression": compression})
    except (OSError, ValueError, RuntimeError) as exc:
        options.pop("quality", None)
        data = _save(picture, {**options, "compression": _FALLBACK_COMPRESSION})
        notes.append(f"written with {_FALLBACK_COMPRESSION} compression ({compression} failed: {exc})")
    data = append_sub_ifds(data, _sub_ifds(source, scrub))
    notes = [*scrub.notes, *notes]
    if source.image.mode != source.mode:
        notes.append(f"written as {source.mode} (the input was {source.image.mode})")
    bits = source.image.tag_v2.get(258, (8,))
    if source.mode in ("RGB", "RGBA", "CMYK") and max(bits if isinstance(bits, tuple) else (bits,)) > 8:
        notes.append(f"{max(bits)}-bit colour written as 8-bit (Pillow decodes it to 8 bits)")
    if pages:
        notes.append(f"all {len(pages) + 1} pages searched and written back, each with the first page's tags")
    if 330 in source.image.tag_v2:
        notes.append("SubIFDs (reduced-resolution previews) removed")
    return Encoded(data, notes)
