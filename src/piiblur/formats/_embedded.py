"""The images a file carries besides its picture, so that they can be searched too.

An EXIF thumbnail or preview, an image in the XMP (GImage:Data of a portrait-mode photo, in the main or
the extended packet), a Photoshop preview, a thumbnail in a PNG text chunk, the secondary frames of an
MPO or whatever JPEG is appended after the image, the secondary images, thumbnails and depth maps of a
HEIF: each is an ``Embedded``. Those that cannot be taken out whole (an incomplete extended XMP, a
FlashPix preview or any JPEG split over segments or cut short, TIFF SubIFD previews) come with ``data``
None: they cannot be searched, so they count as showing something. The writers' ``Scrub`` removes or
redraws every one of them, so a file whose embedded images show something is written again, its picture unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from . import SourceImage, refusal
from ._exif import EXIF_HEADER, dangling_jpeg_starts, preview_spans, raw_thumbnail, thumbnail_range
from ._signatures import image_spans, structure_end
from ._xmp import XMP_SIGNATURE, bare_images, images_in

_SOI = b"\xff\xd8\xff"
# chunks that hold the picture itself or text (searched as text), not searched as blocks
_PNG_PICTURE_AND_TEXT = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT", b"tEXt", b"zTXt",
                                   b"iTXt"})
_WEBP_PICTURE = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"})
_SUB_IFDS, _XMP_TAG, _PHOTOSHOP, _EXIF_IFD, _MAKER_NOTE = 330, 700, 34377, 0x8769, 0x927C


@dataclass(frozen=True)
class Embedded:
    where: str  # what it is and where it lies, for the notes
    data: bytes | None  # the image file's bytes; None: it cannot be taken out, so not searched


def embedded_images(source: SourceImage) -> list[Embedded]:
    """Every image ``source`` carries besides its picture (animation frames and TIFF pages excepted)."""
    found: list[Embedded] = []
    for kind, where, block in _blocks(source):
        found.extend(_in_block(kind, where, block))
    if source.format in ("JPEG", "MPO"):
        found.extend(_jfif_thumbnails(source.data))
        found.extend(_appended(source.data))
    end = structure_end(source.format, source.data)
    if end is not None and source.data[end:].strip(b"\x00"):  # an image, or anything, appended to the file
        found.append(Embedded(f"data after the end of the picture ({len(source.data) - end} bytes)", source.data[end:]))
    if source.format in ("HEIF", "AVIF"):
        found.extend(_heif_extras(source))
    return found


def decode(item: Embedded) -> Image.Image | None:
    """The embedded image fully decoded, or None when it does not decode."""
    if item.data is None:
        return None
    try:
        with Image.open(io.BytesIO(item.data)) as image:
            if refusal(image.format or "?", item.data) is not None:
                return None  # not searched: it counts as showing something, and the scrub removes it
            image.load()
            return image.copy()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def _in_block(kind: str, where: str, block: bytes) -> Iterator[Embedded]:
    if kind == "missing":
        yield Embedded(where, None)
        return
    payload = EXIF_HEADER + block if kind == "exif" and not block.startswith(EXIF_HEADER) else block
    spans = preview_spans(payload)  # the whole JPEGs in it (an EXIF block's IFD1 thumbnail left out)
    if kind == "exif":
        thumb = thumbnail_range(payload)
        if thumb is not None:
            yield Embedded(f"{where} thumbnail", payload[thumb[0]:thumb[1]])
        raw = raw_thumbnail(payload)
        if raw is not None:  # uncompressed (TIFF strips): searched where it is 8-bit RGB
            start, end, size = raw
            yield Embedded(f"{where} uncompressed thumbnail", _raw_rgb(size, payload[start:end]))
    elif kind == "xmp":
        for name, data in images_in(block):
            yield Embedded(f"{name} in the {where}", data)
    for start, end in spans:  # in XMP, a JPEG file put raw into the text
        yield Embedded(f"{'JPEG image' if kind == 'xmp' else 'preview'} in the {where}", payload[start:end])
    for start, end, fmt in image_spans(block):  # a whole PNG, GIF or WebP file (the scrub blanks them)
        yield Embedded(f"{fmt} image in the {where}", block[start:end])
    # a JPEG that begins here but does not end whole: cut short, or split over segments (the scrub zeroes it
    # from its start, and a JPEG's writer drops the segments that continue it)
    if dangling_jpeg_starts(payload, spans):
        yield Embedded(f"part of a JPEG in the {where} (cut short or split over segments, so not searched)", None)
    if kind in ("exif", "other"):  # base64 image data (in XMP, ``images_in`` finds it)
        for data in bare_images(block):
            yield Embedded(f"base64 image data in the {where}", data)


def _blocks(source: SourceImage) -> Iterator[tuple[str, str, bytes]]:
    """(kind, where, block) of each metadata block: kind exif, xmp, other (searched for JPEGs) or missing."""
    if source.format in ("JPEG", "MPO"):
        yield from _jpeg_blocks(source.data)
    elif source.format == "PNG":
        yield from _png_blocks(source.data)
    elif source.format == "TIFF":
        yield from _tiff_blocks(source)
    elif source.format == "WEBP":
        yield from _webp_blocks(source.data)
    else:
        info = source.image.info
        if isinstance(info.get("exif"), bytes):
            yield "exif", "EXIF", info["exif"]
        xmp = info.get("xmp")
        if xmp:
            yield "xmp", "XMP", xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
        comment = info.get("comment")  # a GIF's comment extension
        if isinstance(comment, bytes | str) and comment:
            yield "other", "comment", comment.encode("utf-8") if isinstance(comment, str) else comment


def _jpeg_blocks(data: bytes) -> Iterator[tuple[str, str, bytes]]:
    from ._xmp import EXTENDED_SIGNATURE
    from .jpeg import extended_xmp, header_segments, jumbf

    segments = header_segments(data)[0]
    for number, box in jumbf.boxes(segments).items():  # whole, as a thumbnail may be split over segments
        where = f"JUMBF box {number} (APP11: C2PA content credentials or other)"
        yield "other", where, box  # a JPEG in it that does not decode: ``dangling_jpeg_starts``
    packets, incomplete = extended_xmp(segments)
    for guid in incomplete:
        yield "missing", f"extended XMP {guid} (incomplete, so not searched)", b""
    for packet in packets.values():
        yield "xmp", "extended XMP", packet
    for marker, segment in segments:
        payload = segment[4:]
        if marker == 0xFE:  # a comment: text, or anything
            yield "other", "comment (COM) segment", payload
            continue
        if jumbf.instance(marker, segment) is not None:  # searched whole, above
            continue
        if not (0xE0 <= marker <= 0xEF) or payload.startswith(EXTENDED_SIGNATURE):
            continue
        if marker == 0xE1 and payload.startswith(EXIF_HEADER):
            yield "exif", "EXIF", payload
        elif marker == 0xE1 and payload.startswith(XMP_SIGNATURE):
            yield "xmp", "XMP", payload[len(XMP_SIGNATURE):]
        elif marker == 0xE2 and payload.startswith(b"FPXR") and _SOI in payload:
            yield "missing", "FlashPix (FPXR) preview (split over segments, so not searched)", b""
        else:
            yield "other", f"APP{marker - 0xE0} segment", payload


def _jfif_thumbnails(data: bytes) -> Iterator[Embedded]:
    """The thumbnails of a JPEG's JFIF (raw RGB) and JFXX (palette or RGB) APP0 segments, as pictures; a
    JFXX JPEG thumbnail is a preview like any other (``preview_spans``). The writer removes them all."""
    from .jpeg import header_segments

    for marker, segment in header_segments(data)[0]:
        payload = segment[4:]
        if marker != 0xE0 or len(payload) < 8:
            continue
        if payload.startswith(b"JFIF\x00") and len(payload) >= 14 and payload[12] and payload[13]:
            picture = _raw_rgb((payload[12], payload[13]), payload[14:])
        elif payload.startswith(b"JFXX\x00") and payload[5] == 0x13:
            picture = _raw_rgb((payload[6], payload[7]), payload[8:])
        elif payload.startswith(b"JFXX\x00") and payload[5] == 0x11:
            size = (payload[6], payload[7])
            palette, raw = payload[8:776], payload[776 : 776 + size[0] * size[1]]
            picture = None
            if all(size) and len(palette) == 768 and len(raw) == size[0] * size[1]:
                paletted = Image.frombytes("P", size, raw)
                paletted.putpalette(palette)
                picture = _png(paletted)
        else:
            continue
        if picture is None:
            yield Embedded("JFIF thumbnail (truncated, so not searched)", None)
        else:
            yield Embedded("JFIF thumbnail", picture)


def _raw_rgb(size: tuple[int, int] | None, raw: bytes) -> bytes | None:
    """A thumbnail stored as raw 8-bit RGB (JFIF, JFXX, uncompressed Exif) as a PNG file to search; None
    when its size is unknown or its bytes are too few."""
    if size is None or not all(size) or len(raw) < 3 * size[0] * size[1]:
        return None
    return _png(Image.frombytes("RGB", size, raw[: 3 * size[0] * size[1]]))


def _appended(data: bytes) -> Iterator[Embedded]:
    """JPEG streams after the image's end (MPO secondary frames, appended previews), and any other data
    there: a motion photo's video, a maker's trailer, or the rest of a stream cut short by a stray end
    marker, which a tolerant decoder or a two-byte repair would show. That is no image that can be
    searched: it comes with ``data`` None, so the file is written again without it. Zero padding is
    not data."""
    from .jpeg import image_end

    end = image_end(data)
    rest, pos = end, data.find(_SOI, end)  # rest: where the tail's bytes not yet accounted for start
    other = False
    while pos >= 0:
        try:
            length = image_end(data[pos:])
        except ValueError:
            length = 3
        if length > 3:
            yield Embedded("image after the end of the picture (MPO frame or appended JPEG)", data[pos:pos + length])
            other = other or bool(data[rest:pos].strip(b"\x00"))
            rest = pos + length
        pos = data.find(_SOI, pos + max(length, 3))
    if other or data[rest:].strip(b"\x00"):
        yield Embedded(f"data after the end of the picture that is no image ({len(data) - end} bytes after it in "
                       "all: a motion photo's video, a maker's trailer, or the rest of a damaged stream)", None)


def _png_blocks(data: bytes) -> Iterator[tuple[str, str, bytes]]:
    from .png import chunks, raw_profile, text_of

    for kind, chunk in chunks(data):
        if kind == b"eXIf":
            yield "exif", "EXIF", chunk
            continue
        if kind not in _PNG_PICTURE_AND_TEXT:  # a private or any other chunk: it may hold a file
            yield "other", f"{kind.decode('latin-1')} chunk", chunk
            continue
        blob = raw_profile(kind, chunk)
        if blob is not None:
            yield "other", "raw profile text chunk", blob
        try:
            text = text_of(kind, chunk)
        except ValueError:
            yield "missing", f"{kind.decode('latin-1')} chunk that does not inflate", b""
            continue
        if text is not None:
            keyword = text[0].partition(b"\x00")[0].decode("latin-1")
            yield "xmp", "XMP" if keyword == "XML:com.adobe.xmp" else f"{keyword} text chunk", text[1]


def _tiff_blocks(source: SourceImage) -> Iterator[tuple[str, str, bytes]]:
    tags = source.image.tag_v2
    if isinstance(tags.get(_XMP_TAG), bytes):
        yield "xmp", "XMP", tags[_XMP_TAG]
    if isinstance(tags.get(_PHOTOSHOP), bytes):
        yield "other", "Photoshop resources", tags[_PHOTOSHOP]
    for tag, value in tags.items():  # any other tag of bytes (a private one) may hold an image file
        if tag not in (_XMP_TAG, _PHOTOSHOP) and isinstance(value, bytes) and len(value) > 64:
            yield "other", f"TIFF tag {tag}", value
    for tag, value in source.image.getexif().get_ifd(_EXIF_IFD).items():
        if isinstance(value, bytes) and (tag == _MAKER_NOTE or len(value) > 64):
            yield "other", "maker note" if tag == _MAKER_NOTE else f"EXIF tag {tag}", value
    if _SUB_IFDS in tags:
        yield "missing", "SubIFD previews (not searched)", b""


def _webp_blocks(data: bytes) -> Iterator[tuple[str, str, bytes]]:
    from .webp import riff_chunks

    for fourcc, chunk in riff_chunks(data):
        if fourcc == b"EXIF":
            yield "exif", "EXIF", chunk
        elif fourcc == b"XMP ":
            yield "xmp", "XMP", chunk
        elif fourcc not in _WEBP_PICTURE:
            yield "other", f"{fourcc.decode('latin-1').strip()} chunk", chunk


def _heif_extras(source: SourceImage) -> Iterator[Embedded]:
    """A HEIF's secondary images, thumbnails and depth maps (the writer drops them all)."""
    frames = getattr(source.image, "n_frames", 1)
    if frames > 1:
        with Image.open(io.BytesIO(source.data)) as image:
            for index in range(1, frames):
                image.seek(index)
                yield Embedded(f"secondary image {index + 1} of the HEIF", _png(image))
    if source.format != "HEIF" or not (source.image.info.get("thumbnails") or source.image.info.get("depth_images")):
        return
    try:
        import pillow_heif

        primary = pillow_heif.open_heif(io.BytesIO(source.data)).get_primary_image() if hasattr(
            pillow_heif.HeifFile, "get_primary_image") else pillow_heif.open_heif(io.BytesIO(source.data))[0]
        for index in range(len(primary.info.get("thumbnails") or ())):
            yield Embedded("HEIF thumbnail", _png(primary.get_thumbnail(index).to_pillow()))
        for depth in primary.info.get("depth_images") or ():
            yield Embedded("HEIF depth image", _png(depth.to_pillow()))
    except (ImportError, OSError, ValueError, RuntimeError, IndexError, AttributeError):
        yield Embedded("HEIF thumbnails or depth images (they do not decode, so not searched)", None)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()
