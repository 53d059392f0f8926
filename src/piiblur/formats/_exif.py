"""Patching the thumbnail inside an EXIF (TIFF) block without moving anything else.

The EXIF thumbnail is a small JPEG in IFD1, located by JPEGInterchangeFormat (0x0201, offset from the
TIFF header) and JPEGInterchangeFormatLength (0x0202). Here it is replaced in place: the new thumbnail
is written at the same offset, the rest of the old range is zeroed and only the length value changes,
so every other offset (maker notes included) stays valid and every other byte stays the same.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

EXIF_HEADER = b"Exif\x00\x00"
_THUMB_OFFSET = 0x0201
_THUMB_LENGTH = 0x0202
_SHORT, _LONG = 3, 4

# make_thumb(old_thumbnail_bytes, byte_budget) -> new JPEG of at most byte_budget bytes, or None
ThumbMaker = Callable[[bytes, int], bytes | None]


class _Tiff:
    def __init__(self, data: bytes) -> None:
        order = data[:2]
        if order not in (b"II", b"MM"):
            raise ValueError("not a TIFF header")
        self.data = data
        self.end = "<" if order == b"II" else ">"

    def u16(self, pos: int) -> int:
        return int(struct.unpack_from(self.end + "H", self.data, pos)[0])

    def u32(self, pos: int) -> int:
        return int(struct.unpack_from(self.end + "I", self.data, pos)[0])

    def ifd_entries(self, offset: int) -> tuple[dict[int, int], int]:
        """Tag -> position of its 12-byte entry, and the offset of the next IFD."""
        count = self.u16(offset)
        if offset + 2 + 12 * count + 4 > len(self.data):
            raise ValueError("IFD runs past the end of the EXIF block")
        entries = {self.u16(offset + 2 + 12 * i): offset + 2 + 12 * i for i in range(count)}
        return entries, self.u32(offset + 2 + 12 * count)

    def value(self, entry: int) -> int:
        kind = self.u16(entry + 2)
        if kind == _SHORT:
            return self.u16(entry + 8)
        if kind == _LONG:
            return self.u32(entry + 8)
        raise ValueError(f"unexpected type {kind} for a thumbnail tag")

    def pack_value(self, entry: int, value: int) -> bytes:
        fmt = "H" if self.u16(entry + 2) == _SHORT else "I"
        return struct.pack(self.end + fmt, value)


def thumbnail_range(payload: bytes) -> tuple[int, int] | None:
    """Where the IFD1 JPEG thumbnail lies in an APP1 Exif payload: (start, end), or None."""
    if not payload.startswith(EXIF_HEADER):
        return None
    try:
        tiff = _Tiff(payload[len(EXIF_HEADER):])
        _, ifd1 = tiff.ifd_entries(tiff.u32(4))
        if ifd1 == 0:
            return None
        entries, _ = tiff.ifd_entries(ifd1)
        if _THUMB_OFFSET not in entries or _THUMB_LENGTH not in entries:
            return None
        start, length = tiff.value(entries[_THUMB_OFFSET]), tiff.value(entries[_THUMB_LENGTH])
    except (ValueError, struct.error):
        return None
    base = len(EXIF_HEADER)
    if start <= 0 or base + start >= len(payload):
        return None
    return base + start, min(base + start + length, len(payload))


def replace_thumbnail(payload: bytes, make_thumb: ThumbMaker) -> tuple[bytes, str | None]:
    """Replace the IFD1 thumbnail of an APP1 Exif payload in place.

    Returns the new payload and a note (None when there was no thumbnail). When ``make_thumb`` cannot
    fit a thumbnail in the old one's bytes, the old bytes are zeroed and the length set to 0.
    """
    where = thumbnail_range(payload)
    if where is None:
        return payload, None
    start, end = where
    base = len(EXIF_HEADER)
    tiff = _Tiff(payload[base:])
    _, ifd1 = tiff.ifd_entries(tiff.u32(4))
    length_entry = tiff.ifd_entries(ifd1)[0][_THUMB_LENGTH]

    new = make_thumb(payload[start:end], end - start)
    if new is not None and len(new) > end - start:
        raise ValueError("new thumbnail larger than its budget")
    out = bytearray(payload)
    out[start:end] = (new or b"").ljust(end - start, b"\x00")
    pos = base + length_entry + 8
    packed = tiff.pack_value(length_entry, len(new or b""))
    out[pos:pos + len(packed)] = packed
    if new:
        return bytes(out), "EXIF thumbnail regenerated from the blurred image"
    return bytes(out), "EXIF thumbnail removed (a blurred one did not fit in its place)"
