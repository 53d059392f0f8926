"""JUMBF boxes (ISO/IEC 19566-5) that a JPEG carries in APP11 segments: C2PA content credentials, which
hold thumbnails of the picture ("c2pa.thumbnail.claim.jpeg") and of its ingredients, JPEG 360 metadata.

One box may be split over many segments: each segment's payload is "JP", the box instance (2 bytes), the
packet's sequence number (4 bytes), then the box's bytes, every packet after the first repeating the
box's header (LBox and TBox, and XLBox when LBox is 1). A thumbnail split so is in no one segment whole.
"""

from __future__ import annotations

import struct

from piiblur.formats.jpeg.markers import Marker


def instance(marker: int, segment: bytes) -> int | None:
    """The box instance a marker segment carries a packet of, or None when it is no JUMBF packet."""
    payload = segment[4:]
    if marker != Marker.APP11 or payload[:2] != b"JP" or len(payload) < 16:
        return None
    return int(struct.unpack_from(">H", payload, 2)[0])


def boxes(segments: list[tuple[int, bytes]]) -> dict[int, bytes]:
    """Each box instance's bytes, its packets joined in sequence order."""
    packets: dict[int, list[tuple[int, bytes]]] = {}
    for marker, segment in segments:
        number = instance(marker, segment)
        if number is not None:
            sequence = struct.unpack_from(">I", segment, 8)[0]
            packets.setdefault(number, []).append((sequence, segment[12:]))
    joined: dict[int, bytes] = {}
    for number, parts in packets.items():
        parts.sort(key=lambda part: part[0])
        first = parts[0][1]
        header = 16 if first[:4] == b"\x00\x00\x00\x01" else 8
        joined[number] = first + b"".join(part[header:] for _, part in parts[1:])
    return joined
