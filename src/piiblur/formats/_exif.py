"""Redrawing the thumbnail and previews inside EXIF (and other metadata) blocks, moving nothing else.

The EXIF thumbnail is a small JPEG in IFD1, located by JPEGInterchangeFormat (0x0201, offset from the
TIFF header) and JPEGInterchangeFormatLength (0x0202). Here it is replaced in place: the new thumbnail
is written at the same offset, the rest of the old range is zeroed and only the length value changes,
so every other offset (maker notes included) stays valid and every other byte stays the same.
Preview JPEGs that cameras hide elsewhere in the block (Nikon and Casio maker notes, for example)
are unblurred copies too: ``replace_previews`` redraws them in place the same way. ``scrub_exif`` does
both, drawing from the blurred picture with ``thumb_maker``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

from PIL import Image

from ._signatures import image_spans

EXIF_HEADER = b"Exif\x00\x00"
_THUMB_OFFSET = 0x0201
_THUMB_LENGTH = 0x0202
_SHORT, _LONG = 3, 4
_THUMB_QUALITIES = (90, 80, 70, 60, 50, 40, 30, 20, 10, 5)

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

    def values(self, entry: int) -> list[int]:
        """The SHORT or LONG values of an entry, in it or where it points."""
        kind, count = self.u16(entry + 2), self.u32(entry + 4)
        size = 2 if kind == _SHORT else 4 if kind == _LONG else 0
        if not size or count > 65536:
            raise ValueError(f"unexpected type {kind} or count {count} for strips")
        at = entry + 8 if size * count <= 4 else self.u32(entry + 8)
        if at + size * count > len(self.data):
            raise ValueError("strip offsets past the end of the EXIF block")
        return [self.u16(at + 2 * i) if size == 2 else self.u32(at + 4 * i) for i in range(count)]

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
    if start <= 0 or length <= 0 or base + start >= len(payload):
        return None
    return base + start, min(base + start + length, len(payload))


_WIDTH, _HEIGHT, _PHOTOMETRIC, _STRIP_OFFSETS, _STRIP_COUNTS = 256, 257, 262, 273, 279


def raw_thumbnail(payload: bytes) -> tuple[int, int, tuple[int, int] | None] | None:
    """Where an uncompressed IFD1 thumbnail (TIFF strips, as Exif allows besides JPEG) lies in an APP1 Exif
    payload: (start, end, its (width, height) when it is 8-bit RGB in one strip, else None); None when
    there is none."""
    if not payload.startswith(EXIF_HEADER):
        return None
    try:
        tiff = _Tiff(payload[len(EXIF_HEADER):])
        _, ifd1 = tiff.ifd_entries(tiff.u32(4))
        entries = tiff.ifd_entries(ifd1)[0] if ifd1 else {}
        if _STRIP_OFFSETS not in entries or _STRIP_COUNTS not in entries:
            return None
        offsets, counts = tiff.values(entries[_STRIP_OFFSETS]), tiff.values(entries[_STRIP_COUNTS])
        start, end = min(offsets), max(o + c for o, c in zip(offsets, counts, strict=False))
        size = None
        if _WIDTH in entries and _HEIGHT in entries:
            size = (tiff.value(entries[_WIDTH]), tiff.value(entries[_HEIGHT]))
        rgb = (_PHOTOMETRIC in entries and tiff.value(entries[_PHOTOMETRIC]) == 2 and len(offsets) == 1
               and size is not None and counts[0] == 3 * size[0] * size[1])
    except (ValueError, struct.error):
        return None
    base = len(EXIF_HEADER)
    if start <= 0 or end <= start or base + start >= len(payload):
        return None
    return base + start, min(base + end, len(payload)), size if rgb else None


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
    _overwrite(out, start, end, new)
    pos = base + length_entry + 8
    packed = tiff.pack_value(length_entry, len(new or b""))
    out[pos:pos + len(packed)] = packed
    if new:
        return bytes(out), "EXIF thumbnail regenerated from the blurred image"
    return bytes(out), "EXIF thumbnail removed (a blurred one did not fit in its place)"


def _decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def _overwrite(payload: bytearray, start: int, end: int, new: bytes | None) -> None:
    payload[start:end] = (new or b"").ljust(end - start, b"\x00")


def replace_previews(payload: bytes, make_thumb: ThumbMaker) -> tuple[bytes, int, int]:
    """Redraw, in place, every decodable JPEG embedded in an EXIF payload other than the IFD1 thumbnail.

    Each is found by its SOI and the next EOI and replaced like the thumbnail (zeroed when no new
    one fits); a whole PNG, GIF or WebP file is zeroed; a JPEG that begins but does not end whole in
    the block (``dangling_jpeg_starts``) is zeroed from its start to the block's end. Returns the new
    payload, how many JPEGs were replaced and how many other image files (or parts) zeroed.
    """
    out = bytearray(payload)
    spans = preview_spans(payload)
    dangling = dangling_jpeg_starts(payload, spans)
    for pos, end in spans:
        new = make_thumb(payload[pos:end], end - pos)
        _overwrite(out, pos, end, new if new is not None and len(new) <= end - pos else None)
    others = image_spans(bytes(out))  # whole PNG, GIF or WebP files: zeroed, not redrawn
    for pos, end, _ in others:
        _overwrite(out, pos, end, None)
    if dangling:
        _overwrite(out, dangling[0], len(out), None)
    return bytes(out), len(spans), len(others) + len(dangling)


def preview_spans(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of every decodable JPEG in a block (from an SOI to the next EOI), the IFD1 thumbnail
    of an EXIF payload left out."""
    skip = thumbnail_range(payload)
    spans: list[tuple[int, int]] = []
    pos = payload.find(b"\xff\xd8\xff")
    while pos >= 0:
        end = payload.find(b"\xff\xd9", pos + 3)
        if end < 0:
            break
        end += 2
        inside_thumb = skip is not None and skip[0] <= pos < skip[1]
        if not inside_thumb and _decodes(payload[pos:end]):
            spans.append((pos, end))
            pos = end
        else:
            pos += 3
        pos = payload.find(b"\xff\xd8\xff", pos)
    return spans


# The marker codes a JPEG's first segment after its SOI can have: frame headers, tables, APPn, COM
_HEADER_MARKERS = frozenset({*range(0xC0, 0xD0), 0xDB, 0xDD, *range(0xE0, 0xF0), 0xFE})


def _jpeg_header_at(block: bytes, pos: int) -> bool:
    """True when a JPEG stream that can hold a picture begins at ``pos``: an SOI, then segments of a
    header's kinds with sane lengths up to a scan, or up to the block's end. Random bytes that happen to
    read FF D8 FF are no header; an abbreviated stream of tables alone (SOI, tables, EOI, as in a TIFF's
    JPEGTables) holds no picture."""
    at, segments = pos + 2, 0
    while at + 2 <= len(block) and block[at] == 0xFF:
        marker = block[at + 1]
        if marker == 0xD9:  # the end, before any scan
            return False
        if marker == 0xDA or (marker not in _HEADER_MARKERS and marker != 0xFF):
            return marker == 0xDA and segments > 0
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if at + 4 > len(block):
            break
        length = struct.unpack_from(">H", block, at + 2)[0]
        if length < 2:
            return False
        at, segments = at + 2 + length, segments + 1
    return segments > 0 and at + 4 > len(block)  # cut short by the block's end


def dangling_jpeg_starts(payload: bytes, spans: list[tuple[int, int]] | None = None) -> list[int]:
    """Where a JPEG stream begins in a block but is not a whole, decodable JPEG there: cut short, or
    split over several blocks (a preview in APPn segments, as FlashPix and C2PA split theirs). What it
    holds cannot be searched, and what follows the start may be part of the picture. The IFD1
    thumbnail of an EXIF payload is left out (it is redrawn whole, decodable or not). ``spans``: the
    block's ``preview_spans``, where the caller has them already."""
    skip = thumbnail_range(payload)
    spans = preview_spans(payload) if spans is None else spans
    starts: list[int] = []
    pos = payload.find(b"\xff\xd8\xff")
    while pos >= 0:
        inside = any(a <= pos < b for a, b in spans) or (skip is not None and skip[0] <= pos < skip[1])
        if not inside and _jpeg_header_at(payload, pos):
            starts.append(pos)
        pos = payload.find(b"\xff\xd8\xff", pos + 1)
    return starts


def thumb_maker(picture: Image.Image) -> ThumbMaker:
    """A ThumbMaker drawing from ``picture`` (RGB): the old thumbnail's size (160x120 when it does not
    decode), the picture fitted and centred on black, at the highest JPEG quality that fits the budget."""

    def make(old: bytes, budget: int) -> bytes | None:
        try:
            with Image.open(io.BytesIO(old)) as previous:
                size = previous.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            size = (160, 120)
        scale = min(size[0] / picture.width, size[1] / picture.height)
        fitted = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        thumb = Image.new("RGB", size)
        small = picture.resize(fitted, Image.Resampling.BICUBIC, reducing_gap=3.0)
        thumb.paste(small, ((size[0] - fitted[0]) // 2, (size[1] - fitted[1]) // 2))
        for quality in _THUMB_QUALITIES:
            out = io.BytesIO()
            thumb.save(out, format="JPEG", quality=quality)
            if out.tell() <= budget:
                return out.getvalue()
        return None

    return make


def scrub_exif(exif: bytes, picture: Image.Image) -> tuple[bytes, list[str]]:
    """Redraw the thumbnail and any embedded previews of an EXIF block from ``picture`` (the blurred image,
    RGB), in place. ``exif`` may start with the APP1 "Exif\\0\\0" header or directly with the TIFF header;
    the result has the same form. Returns the block and notes on what changed."""
    bare = not exif.startswith(EXIF_HEADER)
    payload = EXIF_HEADER + exif if bare else exif
    make = thumb_maker(picture)
    payload, note = replace_thumbnail(payload, make)
    payload, previews, others = replace_previews(payload, make)
    notes = [note] if note else []
    raw = raw_thumbnail(payload)
    if raw is not None:  # uncompressed: zeroed in place (a black thumbnail of the same size)
        out = bytearray(payload)
        _overwrite(out, raw[0], raw[1], None)
        payload = bytes(out)
        notes.append("uncompressed EXIF thumbnail zeroed")
    if previews:
        notes.append(f"{previews} preview image(s) inside the EXIF (maker note) redrawn from the blurred image")
    if others:
        notes.append(f"{others} PNG, GIF or WebP image(s), or JPEG(s) cut short, inside the EXIF zeroed")
    return (payload[len(EXIF_HEADER):] if bare else payload), notes


def redraw_previews(block: bytes, picture: Image.Image) -> tuple[bytes, list[str]]:
    """Redraw, in place, preview JPEGs found in any metadata block (Photoshop resources, for example)."""
    if b"\xff\xd8\xff" not in block and not image_spans(block):
        return block, []
    block, count, others = replace_previews(block, thumb_maker(picture))
    notes = [f"{count} preview image(s) in metadata redrawn from the blurred image"] if count else []
    zeroed = [f"{others} PNG, GIF or WebP image(s), or JPEG(s) cut short, in metadata zeroed"] if others else []
    return block, notes + zeroed
