"""Images of other formats inside a block of bytes, and where a file's own structure ends.

A metadata block (a JPEG's APPn or COM segment, a PNG text or private chunk, an EXIF maker note) can hold
a whole PNG, GIF or WebP file, and bytes can follow the end of a PNG, GIF or WebP file; no viewer shows
either, but they are in the file. ``image_spans`` finds the first kind (JPEG previews have their own
finder, ``_exif.preview_spans``); ``structure_end`` tells where the second kind begins.
"""

from __future__ import annotations

import struct

_PNG = b"\x89PNG\r\n\x1a\n"
# signature, format; a match counts only where the header after it makes sense (``_plausible``)
SIGNATURES = ((_PNG, "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"RIFF", "WEBP"))


def structure_end(fmt: str, data: bytes) -> int | None:
    """Where a PNG (after IEND), GIF (after its trailer), WebP (its RIFF chunk) or HEIF/AVIF (its boxes)
    file that starts at ``data``'s first byte ends; None for other formats."""
    if fmt == "PNG":
        pos = len(_PNG)
        while pos + 8 <= len(data):
            length, kind = struct.unpack_from(">I4s", data, pos)
            pos += 12 + length
            if kind == b"IEND":
                break
        return min(pos, len(data))
    if fmt == "WEBP" and data[:4] == b"RIFF" and len(data) >= 8:
        size = struct.unpack_from("<I", data, 4)[0]
        return min(8 + size + (size & 1), len(data))
    if fmt == "GIF":
        return _gif_end(data)[0]
    if fmt in ("HEIF", "AVIF"):
        return _boxes_end(data)
    if fmt == "TIFF":
        return _tiff_end(data)
    return None


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TIFF_SUB_IFDS = (330, 34665, 34853, 40965)  # SubIFDs, EXIF, GPS, Interoperability
_TIFF_DATA = ((273, 279), (324, 325), (513, 514))  # strips, tiles, an old-style JPEG thumbnail: offsets, lengths


def _tiff_end(data: bytes) -> int | None:
    """Where the last byte a classic TIFF's IFDs point to ends (its IFDs, their values, strips and tiles,
    sub-IFDs); None for BigTIFF or what is no TIFF. Data placed between those is not looked at."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8 or struct.unpack_from(order + "H", data, 2)[0] != 42:
        return None
    end = 8
    pending, seen = [struct.unpack_from(order + "I", data, 4)[0]], set()
    while pending and len(seen) < 1000:
        ifd = pending.pop()
        if ifd in seen or ifd < 8 or ifd + 2 > len(data):
            continue
        seen.add(ifd)
        count = struct.unpack_from(order + "H", data, ifd)[0]
        if ifd + 6 + 12 * count > len(data):
            return len(data)  # cut short: it all counts
        end = max(end, ifd + 6 + 12 * count)
        values: dict[int, tuple[int, ...]] = {}
        for index in range(count):
            tag, kind, number, field = struct.unpack_from(order + "HHI4s", data, ifd + 2 + 12 * index)
            size = _TIFF_TYPE_SIZES.get(kind, 1) * number
            at = struct.unpack(order + "I", field)[0] if size > 4 else ifd + 2 + 12 * index + 8
            if size > 4:
                end = max(end, min(at + size, len(data)))
            if kind in (3, 4, 13) and (tag in _TIFF_SUB_IFDS or any(tag in pair for pair in _TIFF_DATA)):
                fmt = order + ("H" if kind == 3 else "I") * number
                if at + struct.calcsize(fmt) <= len(data):
                    values[tag] = struct.unpack_from(fmt, data, at)
        for tag in _TIFF_SUB_IFDS:
            pending.extend(values.get(tag, ()))
        for offsets, lengths in _TIFF_DATA:
            for offset, length in zip(values.get(offsets, ()), values.get(lengths, ()), strict=False):
                end = max(end, min(offset + length, len(data)))
        pending.append(struct.unpack_from(order + "I", data, ifd + 2 + 12 * count)[0])
    return end


def _boxes_end(data: bytes) -> int:
    """Where an ISO base media file's (HEIF, AVIF) top-level boxes end: after the last whole box."""
    pos = 0
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1 and pos + 16 <= len(data):  # a 64-bit size follows the type
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:  # the last box, to the end of the file
            return len(data)
        if size < 8 or pos + size > len(data):
            return pos
        pos += size
    return pos


def image_spans(block: bytes) -> list[tuple[int, int, str]]:
    """(start, end, format) of every PNG, GIF and WebP file inside ``block``, decodable or not."""
    spans: list[tuple[int, int, str]] = []
    for signature, fmt in SIGNATURES:
        pos = block.find(signature)
        while pos >= 0:
            rest = block[pos:]
            end = structure_end(fmt, rest) if _plausible(fmt, rest) else None
            if end:
                spans.append((pos, pos + end, fmt))
            pos = block.find(signature, pos + (end or 1))
    return sorted(spans)


def _plausible(fmt: str, data: bytes) -> bool:
    """True when what follows a signature is that format's header: PNG's IHDR chunk, a GIF whose blocks
    lead to its trailer, a RIFF chunk of WebP (text that merely says "GIF89a" is none of these)."""
    if fmt == "PNG":
        return data[12:16] == b"IHDR"
    if fmt == "WEBP":
        return data[8:12] == b"WEBP"
    return len(data) > 13 and _gif_end(data)[1]


def _gif_end(data: bytes) -> tuple[int, bool]:
    """Offset just past a GIF's trailer, or where its blocks stop making sense; and whether it was the
    trailer."""

    def sub_blocks(pos: int) -> int:
        while pos < len(data) and data[pos]:
            pos += 1 + data[pos]
        return pos + 1

    def colour_table(pos: int, packed: int) -> int:
        return pos + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)

    pos = colour_table(13, data[10]) if len(data) > 13 else len(data)
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return pos + 1, True
        if block == 0x21:  # extension: label, then sub-blocks
            pos = sub_blocks(pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image descriptor, local colour table, LZW data
            pos = sub_blocks(colour_table(pos + 10, data[pos + 9]) + 1)
        else:
            return pos, False
    return len(data), False
