"""JPEG marker segments: the table of marker codes, and walking a stream's header and its first image."""

from __future__ import annotations

import re
import struct
from enum import IntEnum


class Marker(IntEnum):
    """The marker codes pii-blur looks at (the byte after 0xFF)."""

    TEM = 0x01
    SOF0 = 0xC0
    DHT = 0xC4
    JPG = 0xC8
    DAC = 0xCC
    SOF15 = 0xCF
    RST0 = 0xD0
    RST7 = 0xD7
    SOI = 0xD8
    EOI = 0xD9
    SOS = 0xDA
    DRI = 0xDD
    APP0 = 0xE0
    APP1 = 0xE1  # EXIF, XMP, extended XMP
    APP2 = 0xE2  # ICC, MPF, FlashPix
    APP11 = 0xEB  # JUMBF: C2PA content credentials
    APP14 = 0xEE  # Adobe
    APP15 = 0xEF
    COM = 0xFE


# markers without a length or payload
STANDALONE = frozenset({Marker.TEM, *range(Marker.RST0, Marker.RST7 + 1)})
# the 0xC0-0xCF codes that are not frames: Huffman tables, JPG extension, arithmetic coding conditioning
NOT_FRAMES = frozenset({Marker.DHT, Marker.JPG, Marker.DAC})


def is_frame(marker: int) -> bool:
    """A start of frame (SOFn)."""
    return Marker.SOF0 <= marker <= Marker.SOF15 and marker not in NOT_FRAMES


def arithmetic_coded(data: bytes) -> bool:
    """True when the stream's frame is arithmetic-coded (SOF9-11, SOF13-15: the frame codes with bit 3 set)."""
    return any(is_frame(marker) and marker & 0x08 for marker, _ in header_segments(data)[0])


def is_app_or_com(marker: int) -> bool:
    return Marker.APP0 <= marker <= Marker.APP15 or marker == Marker.COM


def is_adobe(marker: int, segment: bytes) -> bool:
    return marker == Marker.APP14 and segment[4:9] == b"Adobe"


def payload(segment: bytes) -> bytes:
    return segment[4:]


def with_payload(marker: int, data: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(data) + 2) + data


def header_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The marker segments between SOI and the first SOS, as (marker, whole segment), and SOS's offset."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:  # junk between segments (a wrong length): skip to the next marker, as libjpeg does
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == Marker.SOS:
            return segments, pos
        if marker in STANDALONE:
            segments.append((marker, data[pos:pos + 2]))
            pos += 2
            continue
        end = pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]
        segments.append((marker, data[pos:end]))
        pos = end
    raise ValueError("JPEG stream has no scan")


def without_empty_segments(data: bytes) -> bytes:
    """The stream without the APPn and COM segments of its header that hold nothing (length field 2), or
    the stream itself when it has none: the copy given to jpeglib. Such a segment is valid JPEG (an empty
    comment), but jpeglib 1.0's marker reader corrupts its heap on one and the process dies (SIGBUS,
    SIGSEGV) or hangs; it carries nothing that the coefficients or the colour space depend on, and the
    output gets the input's segments back byte for byte (``splicing``)."""
    segments, sos = header_segments(data)
    kept = [segment for marker, segment in segments if not (is_app_or_com(marker) and len(segment) == 4)]
    if len(kept) == len(segments):
        return data
    return b"\xff\xd8" + b"".join(kept) + data[sos:]


# In entropy-coded data a marker is 0xFF followed by neither 0 (a stuffed 0xFF), nor RSTn, nor 0xFF (fill)
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _after_header(data: bytes) -> tuple[int, int]:
    """Walk the first image from its first SOS: (scans, offset just past its EOI, or the length when the
    EOI is missing)."""
    _, pos = header_segments(data)
    scans = 0
    while pos + 3 < len(data):
        if data[pos + 1] == Marker.SOS:
            scans += 1
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]  # the SOS (or other) segment
        found = _NEXT_MARKER.search(data, pos)  # past the entropy-coded data
        if found is None:
            return scans, len(data)
        pos = found.start()
        if data[pos + 1] == Marker.EOI:
            return scans, pos + 2
    return scans, len(data)


def image_end(data: bytes) -> int:
    """Offset just past the first image's EOI (the length when it is missing)."""
    return _after_header(data)[1]


def scan_count(data: bytes) -> int:
    """How many scans (SOS segments) the first image has. libjpeg reads the whole picture's coefficients
    again for each scan of a progressive image, so a few bytes a scan can make one file take hours."""
    return _after_header(data)[0]


def restart_interval(data: bytes) -> int:
    for marker, segment in header_segments(data)[0]:
        if marker == Marker.DRI and len(segment) >= 6:
            return int(struct.unpack_from(">H", segment, 4)[0])
    return 0


def huffman_tables(data: bytes) -> set[bytes]:
    """The Huffman tables defined before the first scan, each as its DHT entry (class and slot, the 16
    code-length counts, the symbols)."""
    tables: set[bytes] = set()
    for marker, segment in header_segments(data)[0]:
        if marker != Marker.DHT:
            continue
        body, pos = payload(segment), 0
        while pos + 17 <= len(body):
            end = pos + 17 + sum(body[pos + 1 : pos + 17])
            tables.add(bytes(body[pos:end]))
            pos = end
    return tables
