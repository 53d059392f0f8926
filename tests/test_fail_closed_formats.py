"""Fail closed: no unblurred copy survives in metadata, embedded images and later frames are searched,
extended XMP cannot make us allocate what is not there, unusual colour modes are kept.

Every input is made here; the "blur" of the format tests is a black top-left quarter (helpers from
test_formats), the pipeline tests use the example portrait and the real face detector.
"""

from __future__ import annotations

import base64
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, detail
from PIL import Image, PngImagePlugin, features
from test_formats import blacken, exif_block, insert_segments, jpeg_bytes, load, quarters, scene
from test_formats_faithful import embedded_images

from piiblur.formats import _encode_with_pillow, encode_image
from piiblur.formats._exif import EXIF_HEADER
from piiblur.formats._xmp import EXTENDED_SIGNATURE, XMP_SIGNATURE, gather
from piiblur.formats.jpeg import header_segments

GPANO = b'GPano:ProjectionType="equirectangular"'


def xmp_holding(image: Image.Image) -> bytes:
    """An XMP packet carrying ``image`` as GImage:Data, as phone cameras write in portrait mode."""
    data = base64.b64encode(jpeg_bytes(image, quality=80))
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description ' + GPANO
            + b' GImage:Mime="image/jpeg" GImage:Data="' + data + b'"/></rdf:RDF></x:xmpmeta>')


def exif_with_thumbnail(image: Image.Image) -> bytes:
    return EXIF_HEADER + exif_block(jpeg_bytes(image.resize((160, 120)), quality=95))


def unblurred_copies(data: bytes) -> list[Image.Image]:
    """Images anywhere in ``data`` (raw, base64, in XMP as Pillow reads it) whose top-left quarter is bright."""
    blobs = [data]
    with Image.open(io.BytesIO(data)) as image:
        xmp = image.info.get("xmp") or b""
        blobs.append(xmp.encode() if isinstance(xmp, str) else xmp)
    found = [image for blob in blobs for image in embedded_images(blob)]
    return [image for image in found if quarters(image)[0] > 100]


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _png_with_xmp(picture: Image.Image, compressed: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp_holding(picture).decode("latin-1"), zip=compressed)
    return save(picture, "PNG", pnginfo=info, exif=exif_with_thumbnail(picture))


def _inputs() -> dict[str, bytes]:
    picture = scene()
    exif = exif_with_thumbnail(picture)
    made = {
        "JPEG": jpeg_bytes(picture, quality=85, exif=exif, xmp=xmp_holding(picture)),
        "PNG": _png_with_xmp(picture, compressed=False),
        "PNG-compressed-iTXt": _png_with_xmp(picture, compressed=True),
        "TIFF": save(picture, "TIFF", tiffinfo={700: xmp_holding(picture)}),
        "WEBP": save(picture, "WEBP", quality=90, exif=exif, xmp=xmp_holding(picture)),
        "WEBP-lossless": save(picture, "WEBP", lossless=True, exif=exif, xmp=xmp_holding(picture)),
    }
    if features.check("avif"):
        made["AVIF"] = save(picture, "AVIF", exif=exif, xmp=xmp_holding(picture))
    try:
        import pillow_heif  # noqa: F401

        made["HEIF"] = save(picture, "HEIF", exif=exif, xmp=xmp_holding(picture))
    except (ImportError, KeyError, OSError):
        pass
    return made


INPUTS = _inputs()


# ---- one scrub for every format (item 2) ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_format_drops_the_unblurred_copies_in_its_metadata(tmp_path: Path, name: str) -> None:
    data = INPUTS[name]
    assert unblurred_copies(data), "the input must carry an unblurred copy"
    source = load(tmp_path, f"in.{name.split('-')[0].lower()}", data)
    encoded = encode_image(source, blacken(source))
    assert unblurred_copies(encoded.data) == []
    assert b"GImage:Data" not in encoded.data
    assert any("GImage:Data" in note for note in encoded.notes)
    with Image.open(io.BytesIO(encoded.data)) as out:  # the rest of the XMP is kept
        xmp = out.info.get("xmp") or b""
        assert GPANO in (xmp.encode() if isinstance(xmp, str) else xmp)
        assert out.format == source.format


def test_pillows_generic_writer_scrubs_exif_and_xmp_too(tmp_path: Path) -> None:
    source = load(tmp_path, "in.webp", INPUTS["WEBP-lossless"])
    encoded = _encode_with_pillow(source, blacken(source))
    assert unblurred_copies(encoded.data) == []
    assert any("EXIF thumbnail" in note for note in encoded.notes)
    assert any("GImage:Data" in note for note in encoded.notes)


# ---- extended XMP: only the bytes present (item 4) --------------------------------------------------------


def _extended_segment(guid: bytes, full: int, offset: int, piece: bytes) -> bytes:
    payload = EXTENDED_SIGNATURE + guid + struct.pack(">II", full, offset) + piece
    return b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload


def jpeg_with_extended_xmp(picture: Image.Image, claim: int | None = None) -> bytes:
    """A JPEG whose extended XMP holds ``picture`` in GImage:Data; ``claim`` overrides the total length."""
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    extended = xmp_holding(picture)
    main = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmpNote:HasExtendedXMP="' + guid
            + b'"/></rdf:RDF></x:xmpmeta>')
    segments = [b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_SIGNATURE) + len(main)) + XMP_SIGNATURE + main]
    for offset in range(0, len(extended), 30000):
        segments.append(_extended_segment(guid, claim or len(extended), offset, extended[offset:offset + 30000]))
    return insert_segments(jpeg_bytes(Image.new("RGB", (64, 48), (90, 140, 200)), quality=90), segments)


def test_extended_xmp_claiming_more_than_present_allocates_nothing_and_is_dropped(tmp_path: Path) -> None:
    data = jpeg_with_extended_xmp(scene(), claim=200 << 20)  # 200 MB claimed in a file of some 30 KB
    source = load(tmp_path, "claim.jpg", data)
    tracemalloc.start()
    try:
        encoded = encode_image(source, blacken(source))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 << 20
    assert EXTENDED_SIGNATURE not in encoded.data and unblurred_copies(encoded.data) == []
    assert any("extended XMP" in note and "incomplete" in note for note in encoded.notes)


def test_extended_xmp_with_a_missing_chunk_is_incomplete() -> None:
    guid = b"F" * 32
    whole = bytes(range(256)) * 100
    pieces = [EXTENDED_SIGNATURE + guid + struct.pack(">II", len(whole), o) + whole[o:o + 5000]
              for o in range(0, len(whole), 5000)]
    assert gather(pieces) == ({guid.decode(): whole}, [])
    assert gather(pieces[:2] + pieces[3:]) == ({}, [guid.decode()])
