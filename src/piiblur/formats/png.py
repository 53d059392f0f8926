"""PNG writer: Pillow, the same mode, the input's ancillary chunks carried over.

Text (tEXt, zTXt, iTXt, XMP included), tIME, gAMA, cHRM, sRGB and cICP chunks are copied byte for byte;
the ICC profile, eXIf (its thumbnail redrawn), pixel density and transparency go through Pillow's own
options. Palette and bilevel inputs come back as RGB(A) since the blur makes new colours.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from . import Encoded, SourceImage
from ._exif import scrub_exif

FORMATS = ("PNG",)

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COPIED = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"gAMA", b"cHRM", b"sRGB", b"cICP"}
_SAME_MODE_ONLY = {b"sBIT", b"bKGD"}  # meaningful only while the colour type and depth are unchanged
_HANDLED = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"iCCP", b"eXIf", b"pHYs", b"tRNS"}
_ANIMATION = {b"acTL", b"fcTL", b"fdAT"}


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG file, in order."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    found: list[tuple[bytes, bytes]] = []
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        found.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return found


def holds_jpeg(kind: bytes, data: bytes) -> bool:
    """True for an ImageMagick "Raw profile type ..." text chunk (hex-encoded EXIF, IPTC, ...) that embeds
    a JPEG, such as an EXIF thumbnail. Such a chunk is dropped, as the thumbnail cannot be redrawn in it."""
    keyword, _, rest = data.partition(b"\x00")
    if kind not in (b"tEXt", b"zTXt") or not keyword.startswith(b"Raw profile type"):
        return False
    try:
        text = zlib.decompress(rest[1:]) if kind == b"zTXt" else rest
        blob = bytes.fromhex("".join(text.decode("latin-1").split()[2:]))
    except (zlib.error, ValueError):
        return False
    return b"\xff\xd8\xff" in blob


def encode(source: SourceImage, pixels: np.ndarray) -> Encoded:
    # Pillow infers the 16-bit modes from the dtype but refuses them when named
    picture = Image.fromarray(pixels) if source.mode.startswith("I;16") else Image.fromarray(pixels, source.mode)
    info = source.image.info
    original = chunks(source.data)
    header = dict(original).get(b"IHDR", b"")
    deep_colour = len(header) >= 10 and header[8] == 16 and header[9] in (2, 6)
    same_mode = source.image.mode == source.mode and not deep_colour
    notes: list[str] = []

    pnginfo = PngImagePlugin.PngInfo()
    dropped: list[str] = []
    for kind, data in original:
        if holds_jpeg(kind, data):
            keyword = data.partition(b"\x00")[0].decode("latin-1")
            notes.append(f"{keyword} text chunk removed: it holds a thumbnail")
        elif kind in _COPIED or (kind in _SAME_MODE_ONLY and same_mode):
            pnginfo.add(kind, data)
        elif kind not in _HANDLED and kind not in _ANIMATION and kind.decode("latin-1") not in dropped:
            dropped.append(kind.decode("latin-1"))
    options: dict[str, Any] = {"format": "PNG", "pnginfo": pnginfo}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    if info.get("dpi"):
        options["dpi"] = info["dpi"]
    if "transparency" in info and same_mode and source.mode != "RGBA":
        options["transparency"] = info["transparency"]
    if info.get("exif"):
        options["exif"], exif_notes = scrub_exif(info["exif"], picture.convert("RGB"))
        notes.extend(exif_notes)

    out = io.BytesIO()
    picture.save(out, **options)
    if source.image.mode != source.mode:
        notes.append(f"written as {source.mode} (the input was {source.image.mode})")
    if deep_colour:
        notes.append("16-bit colour written as 8-bit (Pillow decodes 16-bit RGB(A) PNG to 8 bits)")
    if len(header) >= 13 and header[12] == 1:
        notes.append("Adam7 interlacing not kept")
    if getattr(source.image, "n_frames", 1) > 1:
        notes.append(f"animation frames after the first removed ({source.image.n_frames - 1})")
    if dropped:
        notes.append(f"PNG chunks not carried over: {', '.join(dropped)}")
    return Encoded(out.getvalue(), notes)
