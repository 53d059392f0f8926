"""Images hidden in XMP: base64 JPEG/PNG/TIFF data (GImage:Data, GDepth:Data, xmpGImg:image thumbnails, ...).

They are copies of (part of) the picture and are not blurred here, so they are removed; the property holding
one is dropped, everything else in the packet stays byte for byte. ``strip_images`` works on one XMP packet;
``ExtendedXmp`` reassembles, strips and re-splits the extended XMP that JPEG spreads over several APP1
segments (it is referenced by an MD5 GUID from the main packet, which is updated to match).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct

XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_SIGNATURE = b"http://ns.adobe.com/xmp/extension/\x00"
_CHUNK = 65000  # extended XMP data per APP1 segment (the segment limit is 65533 bytes in all)

# base64 openings of JPEG, PNG, TIFF (both byte orders), WebP/RIFF, GIF and HEIF/MP4 (ftyp) data
_IMAGE_B64 = rb"(?:/9j/|iVBORw0KGgo|SUkqA|TU0AK|UklGR|R0lGOD|AAAA[A-Za-z0-9+/]{2}ZnR5c)"
_OPENING = re.compile(_IMAGE_B64)
_NAME = rb"[A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*"
_ATTRIBUTE = re.compile(rb"\s(" + _NAME + rb')\s*=\s*(["\'])\s*' + _IMAGE_B64 + rb"[^\"']{64,}\2")
_ELEMENT = re.compile(rb"<(" + _NAME + rb")(?:\s[^>]*)?>\s*" + _IMAGE_B64 + rb"[^<]{64,}</\1\s*>")
# base64 image data outside any XML property (a data URI in a PNG text chunk, JSON, a comment): a run of
# base64, with line breaks, escaped ones and XML character references, long enough to be an image
_BARE = re.compile(_IMAGE_B64 + rb"(?:[A-Za-z0-9+/=\r\n]|\\n|&#x?[0-9A-Fa-f]{1,6};){96,}")
_HAS_EXTENDED = re.compile(rb"(xmpNote:HasExtendedXMP\s*=\s*[\"']|<xmpNote:HasExtendedXMP>)([0-9A-Fa-f]{32})")


def strip_images(packet: bytes) -> tuple[bytes, list[str]]:
    """Remove every property whose value is base64 image data; returns the packet and the property names."""
    removed: list[str] = []

    def drop(match: re.Match[bytes]) -> bytes:
        removed.append(match.group(1).decode("latin-1"))
        return b""

    packet = _ELEMENT.sub(drop, packet)
    packet = _ATTRIBUTE.sub(drop, packet)
    packet, bare = blank_bare_images(packet)
    return packet, removed + ["base64 image data"] * bare


def blank_bare_images(block: bytes) -> tuple[bytes, int]:
    """``block`` with every run of base64 image data outside an XML property overwritten by spaces (its
    length kept, for blocks whose offsets must not move), and how many there were."""
    out = bytearray(block)
    count = 0
    for match in _BARE.finditer(block):
        out[match.start():match.end()] = b" " * (match.end() - match.start())
        count += 1
    return bytes(out), count


def bare_images(block: bytes) -> list[bytes]:
    """The decoded bytes of every run of base64 image data in ``block`` (``blank_bare_images`` blanks them)."""
    return [_decoded(match.group(0)) for match in _BARE.finditer(block)]


def _decoded(text: bytes) -> bytes:
    """Base64 text (with line breaks, escaped ones, character references) decoded; b"" when it is not."""
    text = re.sub(rb"\\n|&#x?[0-9A-Fa-f]+;|[^A-Za-z0-9+/=]", b"", text).split(b"=")[0]
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4))
    except ValueError:
        return b""


def images_in(packet: bytes) -> list[tuple[str, bytes]]:
    """The images ``strip_images`` removes: (property name, decoded bytes) each, in the packet's order."""
    found: list[tuple[int, str, bytes]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_ELEMENT, _ATTRIBUTE):
        for match in pattern.finditer(packet):
            start = _OPENING.search(match.group(0)).start()  # type: ignore[union-attr]
            text = match.group(0)[start:].split(b"<")[0]
            found.append((match.start(), match.group(1).decode("latin-1"), _decoded(text)))
            taken.append(match.span())
    for match in _BARE.finditer(packet):  # outside the properties above
        if not any(a <= match.start() < b for a, b in taken):
            found.append((match.start(), "base64 image data", _decoded(match.group(0))))
    return [(name, data) for _, name, data in sorted(found)]


def extended_guid(main: bytes) -> str | None:
    match = _HAS_EXTENDED.search(main)
    return match.group(2).decode("ascii").upper() if match else None


def with_guid(main: bytes, guid: str) -> bytes:
    return _HAS_EXTENDED.sub(lambda m: m.group(1) + guid.encode("ascii"), main, count=1)


def parse_extended(payload: bytes) -> tuple[str, int, int, bytes] | None:
    """(GUID, full length, offset, data) of an extended XMP APP1 payload, or None."""
    head = len(EXTENDED_SIGNATURE)
    if not payload.startswith(EXTENDED_SIGNATURE) or len(payload) < head + 40:
        return None
    guid = payload[head:head + 32].decode("latin-1").upper()
    full, offset = struct.unpack_from(">II", payload, head + 32)
    return guid, full, offset, payload[head + 40:]


def assemble(payloads: list[bytes]) -> dict[str, bytes]:
    """The complete extended XMP packets of a file, by GUID (incomplete ones left out: see ``gather``)."""
    return gather(payloads)[0]


def gather(payloads: list[bytes]) -> tuple[dict[str, bytes], list[str]]:
    """The complete extended XMP packets of a file, by GUID, and the GUIDs of incomplete ones.

    Nothing is allocated beyond the bytes present: a packet is joined only when its chunks cover every
    byte of the length they claim, contiguously from 0. A claim the chunks do not make good (a 4 GB length
    in an 81 KB file, a missing chunk, chunks that disagree on the length) makes the packet incomplete:
    it is not trusted, and the caller drops it.
    """
    parts: dict[str, dict[int, bytes]] = {}
    lengths: dict[str, set[int]] = {}
    for payload in payloads:
        parsed = parse_extended(payload)
        if parsed is None:
            continue
        guid, full, offset, data = parsed
        parts.setdefault(guid, {})[offset] = data
        lengths.setdefault(guid, set()).add(full)
    packets: dict[str, bytes] = {}
    incomplete: list[str] = []
    for guid, pieces in parts.items():
        joined = _join(pieces, lengths[guid])
        if joined is None:
            incomplete.append(guid)
        else:
            packets[guid] = joined
    return packets, incomplete


def _join(pieces: dict[int, bytes], lengths: set[int]) -> bytes | None:
    """The pieces joined when they cover exactly [0, length) of the one length they all claim, else None."""
    if len(lengths) != 1:
        return None
    (full,) = lengths
    if sum(len(data) for data in pieces.values()) < full:  # cheap refusal before any joining
        return None
    position, ordered = 0, []
    for offset in sorted(pieces):
        if offset != position or position >= full:
            return None
        data = pieces[offset][: full - position]
        ordered.append(data)
        position += len(data)
    return b"".join(ordered) if position == full else None


def split(packet: bytes) -> tuple[str, list[bytes]]:
    """A new GUID (the MD5 of the packet, as the XMP specification asks) and the APP1 payloads carrying it."""
    guid = hashlib.md5(packet, usedforsecurity=False).hexdigest().upper()
    payloads = []
    for offset in range(0, max(len(packet), 1), _CHUNK):
        payloads.append(EXTENDED_SIGNATURE + guid.encode("ascii") + struct.pack(">II", len(packet), offset)
                        + packet[offset:offset + _CHUNK])
    return guid, payloads
