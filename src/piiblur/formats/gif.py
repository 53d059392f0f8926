"""GIF: written by Pillow's generic writer (every frame, durations and loop kept). What this plugin adds is
the check of the whole stream: an image whose LZW data holds more pixels than its descriptor declares
(decoders stop at the declared rows; a patched descriptor shows the rest)."""

from __future__ import annotations

import struct

from . import _encode_with_pillow
from ._decoded_size import lzw

FORMATS = ("GIF",)

encode = _encode_with_pillow


def stream_warnings(data: bytes) -> list[str]:
    """One line for each image of the file whose data decodes to more pixels than its descriptor holds."""
    if len(data) < 13 or not data.startswith((b"GIF87a", b"GIF89a")):
        return []
    found: list[str] = []
    pos, number = 13 + _colour_table(data[10]), 0
    while pos < len(data):
        block = data[pos]
        if block == 0x21 and pos + 2 <= len(data):  # an extension: its label, then sub-blocks
            pos = _sub_blocks(data, pos + 2)[1]
        elif block == 0x2C and pos + 11 <= len(data):  # an image: descriptor, local colour table, LZW data
            number += 1
            width, height = struct.unpack_from("<HH", data, pos + 5)
            start = pos + 10 + _colour_table(data[pos + 9])
            if start >= len(data):
                break
            codes, pos = _sub_blocks(data, start + 1)
            if 2 <= data[start] <= 11 and lzw(codes, data[start], width * height + 1) > width * height:
                found.append(f"image {number} holds more than its {width}x{height} pixels")
        else:  # the trailer, or what no decoder reads (data after it is checked as such)
            break
    return found


def _colour_table(packed: int) -> int:
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def _sub_blocks(data: bytes, pos: int) -> tuple[bytes, int]:
    """The bytes of the sub-blocks starting at ``pos`` joined, and where they end."""
    parts = []
    while pos < len(data) and data[pos]:
        parts.append(data[pos + 1 : pos + 1 + data[pos]])
        pos += 1 + data[pos]
    return b"".join(parts), pos + 1
