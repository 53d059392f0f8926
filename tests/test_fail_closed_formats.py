"""Fail closed: no unblurred copy survives in metadata, embedded images and later frames are searched,
extended XMP cannot make us allocate what is not there, unusual colour modes are kept.

Every input is made here; the "blur" of the format tests is a black top-left quarter (helpers from
test_formats), the pipeline tests use the example portrait and the real face detector.
"""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, detail
from PIL import Image, PngImagePlugin, features
from test_formats import blacken, exif_block, insert_segments, jpeg_bytes, load, quarters, scene
from test_formats_faithful import dct, embedded_images

from piiblur.formats import _encode_with_pillow, encode_image
from piiblur.formats._exif import EXIF_HEADER
from piiblur.formats._xmp import EXTENDED_SIGNATURE, XMP_SIGNATURE, gather
from piiblur.formats.jpeg.markers import without_empty_segments

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


# ---- embedded images are searched when the picture shows nothing (item 1) -------------------------------


def portrait_image() -> Image.Image:
    return Image.open(EXAMPLE).convert("RGB")


def empty_picture() -> Image.Image:
    return Image.new("RGB", (512, 512), (120, 170, 230))


def faces_in(blurrer, data: bytes) -> int:
    return len(blurrer.detect(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))


def _exif_thumbnail_of(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as image:
        exif = image.info.get("exif") or b""
    from piiblur.formats._exif import thumbnail_range

    where = thumbnail_range(exif)
    return exif[where[0]:where[1]] if where else None


def test_a_face_only_in_the_exif_thumbnail_is_not_copied(blurrer) -> None:
    thumb = jpeg_bytes(portrait_image().resize((256, 256)), quality=95)
    data = jpeg_bytes(empty_picture(), quality=90, exif=EXIF_HEADER + exif_block(thumb))
    assert faces_in(blurrer, _exif_thumbnail_of(data))
    result, out = blurrer.process_bytes(data, "thumb.jpg")
    assert result.status == "blurred" and out is not None
    assert any("thumbnail" in note and "face" in note for note in result.notes)
    assert any(d.get("embedded") for d in result.detections)
    new_thumb = _exif_thumbnail_of(out)
    assert new_thumb is None or not faces_in(blurrer, new_thumb)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_face_only_in_the_xmp_is_removed(blurrer, fmt: str) -> None:
    xmp = xmp_holding(portrait_image().resize((256, 256)))  # a JPEG segment holds at most 64 KB
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("latin-1"), zip=True)
        data = save(empty_picture(), fmt, pnginfo=info)
    else:
        data = save(empty_picture(), fmt, xmp=xmp, quality=90)
    result, out = blurrer.process_bytes(data, f"x.{fmt.lower()}")
    assert result.status == "blurred" and out is not None
    assert b"GImage:Data" not in out and any("GImage:Data" in note for note in result.notes)
    with Image.open(io.BytesIO(out)) as image:  # the rest of the XMP kept
        xmp = image.info.get("xmp") or b""
    assert GPANO in (xmp.encode() if isinstance(xmp, str) else xmp)


def test_a_face_only_in_the_extended_xmp_is_removed(blurrer) -> None:
    data = jpeg_with_extended_xmp(portrait_image())
    result, out = blurrer.process_bytes(data, "ext.jpg")
    assert result.status == "blurred" and out is not None
    assert b"GImage:Data" not in out and any("extended XMP" in note for note in result.notes)


def test_an_incomplete_extended_xmp_in_a_clean_photo_is_dropped_not_copied(blurrer) -> None:
    data = jpeg_with_extended_xmp(scene(), claim=1 << 30)
    result, out = blurrer.process_bytes(data, "claim.jpg")
    assert result.status == "blurred" and out is not None and EXTENDED_SIGNATURE not in out
    assert any("incomplete" in note for note in result.notes)


def test_a_clean_photo_with_clean_embedded_images_is_still_copied(blurrer) -> None:
    data = jpeg_bytes(empty_picture(), quality=90, exif=exif_with_thumbnail(empty_picture()),
                      xmp=xmp_holding(empty_picture()))
    result, out = blurrer.process_bytes(data, "clean.jpg")
    assert result.status == "copied" and out is None


def test_data_after_the_end_of_a_clean_photo_is_not_copied(blurrer) -> None:
    """A motion photo's video after the JPEG's end cannot be searched: the file is written without it."""
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    data = jpeg_bytes(empty_picture(), quality=90) + video
    result, out = blurrer.process_bytes(data, "motion.jpg")
    assert result.status == "blurred" and out is not None
    assert b"ftypmp42" not in out and any("no image" in note for note in result.notes)
    padded = jpeg_bytes(empty_picture(), quality=90) + bytes(4096)  # zero padding is not data
    assert blurrer.process_bytes(padded, "padded.jpg")[0].status == "copied"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "HEIF", "AVIF", "TIFF"])
def test_an_image_appended_after_the_end_of_a_clean_file_is_searched(blurrer, fmt: str) -> None:
    """Bytes after a PNG's IEND, a GIF's trailer or a WebP's RIFF chunk are shown by no viewer, but are in
    the file: a face appended there is searched, found, and not copied; junk there cannot be searched."""
    face = save(portrait_image(), "PNG")
    assert faces_in(blurrer, face)
    result, out = blurrer.process_bytes(save(empty_picture(), fmt) + face, f"x.{fmt.lower()}")
    assert result.status == "blurred" and out is not None and face[64:4096] not in out
    assert any(d.get("embedded") for d in result.detections)
    result, out = blurrer.process_bytes(save(empty_picture(), fmt) + b"junk" * 100, f"x.{fmt.lower()}")
    assert result.status == "blurred" and out is not None and b"junk" not in out
    assert blurrer.process_bytes(save(empty_picture(), fmt), f"x.{fmt.lower()}")[0].status == "copied"


def _with_block(fmt: str, block: bytes) -> bytes:
    """An empty picture whose file carries ``block`` where no viewer shows it: a JPEG's APP15 segment or
    comment, a PNG's private chunk, a WebP's unknown chunk."""
    import zlib

    if fmt in ("APP15", "COM"):
        base = save(empty_picture(), "JPEG", quality=90)
        marker = b"\xff\xef" if fmt == "APP15" else b"\xff\xfe"
        return base[:2] + marker + struct.pack(">H", len(block) + 2) + block + base[2:]
    if fmt == "PNG":
        base = save(empty_picture(), "PNG")
        at = base.index(b"IDAT") - 4
        crc = struct.pack(">I", zlib.crc32(b"prVt" + block) & 0xFFFFFFFF)
        return base[:at] + struct.pack(">I", len(block)) + b"prVt" + block + crc + base[at:]
    base = save(empty_picture(), "WEBP")
    riff = base[8:] + b"prVt" + struct.pack("<I", len(block)) + block + b"\x00" * (len(block) & 1)
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


@pytest.mark.parametrize(("fmt", "inner"), [("APP15", "PNG"), ("COM", "JPEG"), ("COM", "GIF"), ("PNG", "PNG"),
                                            ("WEBP", "PNG")])
def test_an_image_file_in_any_metadata_block_is_searched_and_removed(blurrer, fmt: str, inner: str) -> None:
    """A whole image file put into a segment or chunk that no viewer shows: searched; with a face in it,
    the file is written with that image zeroed or dropped, not copied."""
    face = save(portrait_image().resize((160, 160)), inner, **({"quality": 80} if inner == "JPEG" else {}))
    assert faces_in(blurrer, face)
    result, out = blurrer.process_bytes(_with_block(fmt, face), "x.png" if fmt == "PNG" else "x.webp"
                                        if fmt == "WEBP" else "x.jpg")
    assert result.status == "blurred" and out is not None
    assert any(d.get("embedded") for d in result.detections)
    assert face[16:2000] not in out


@pytest.mark.parametrize("fmt", ["APP15", "COM", "PNG", "WEBP"])
def test_a_jpeg_cut_short_or_split_over_blocks_is_not_copied(blurrer, fmt: str) -> None:
    """A JPEG that begins in a metadata block but does not end whole there (split over segments, as
    FlashPix and C2PA split theirs, or cut short) cannot be searched: the file is written, not copied,
    with the part of the JPEG zeroed and, in a JPEG, the segments that continue it dropped. A stream of
    tables alone (a TIFF's JPEGTables) is no picture and changes nothing."""
    face = save(portrait_image(), "JPEG", quality=85)
    assert faces_in(blurrer, face)
    name = "x.png" if fmt == "PNG" else "x.webp" if fmt == "WEBP" else "x.jpg"
    half = len(face) // 2
    if fmt in ("APP15", "COM"):  # split over two segments of one kind
        marker = b"\xff\xef" if fmt == "APP15" else b"\xff\xfe"
        first = _with_block(fmt, face[:half])
        end = 6 + half  # after the first segment
        data = first[:end] + marker + struct.pack(">H", len(face) - half + 2) + face[half:] + first[end:]
    else:  # cut short
        data = _with_block(fmt, face[:half])
    result, out = blurrer.process_bytes(data, name)
    assert result.status == "blurred" and out is not None
    assert any("part of a JPEG" in note for note in result.notes)
    assert face[100:2000] not in out and face[half + 100 : half + 2000] not in out
    tables = face[: face.index(b"\xff\xda")] + b"\xff\xd9"  # SOI, tables, frame header, EOI: no scan
    assert blurrer.process_bytes(_with_block(fmt, tables), name)[0].status == "copied"


@pytest.mark.parametrize("segment", ["JFIF", "JFXX"])
def test_a_jfif_thumbnail_is_searched_and_removed(blurrer, segment: str) -> None:
    """JFIF's APP0 segment, and its JFXX extension, can carry a thumbnail as raw pixels, which no JPEG
    preview finder sees: searched as a picture, and gone from the output, blurred or not."""
    thumb = np.asarray(portrait_image().resize((120, 120)))
    header = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01"
    body = header + b"\x78\x78" + thumb.tobytes() if segment == "JFIF" else b"JFXX\x00\x13\x78\x78" + thumb.tobytes()
    app0 = b"\xff\xe0" + struct.pack(">H", len(body) + 2) + body
    for picture in (empty_picture(), portrait_image()):
        base = save(picture, "JPEG", quality=90)
        assert base[2:4] == b"\xff\xe0"  # Pillow's own JFIF segment, replaced
        data = base[:2] + app0 + base[4 + struct.unpack(">H", base[4:6])[0] :]
        result, out = blurrer.process_bytes(data, "jfif.jpg")
        assert result.status == "blurred" and out is not None
        assert thumb.tobytes()[6000:9000] not in out
        assert any("JFIF thumbnail removed" in n or "JFXX thumbnail" in n for n in result.notes)


def test_an_image_in_a_gif_comment_is_searched_and_dropped(blurrer) -> None:
    face = save(portrait_image().resize((160, 160)), "PNG")
    result, out = blurrer.process_bytes(save(empty_picture(), "GIF", comment=face), "x.gif")
    assert result.status == "blurred" and out is not None and face[16:2000] not in out
    assert blurrer.process_bytes(save(empty_picture(), "GIF", comment=b"words"), "x.gif")[0].status == "copied"


@pytest.mark.parametrize("inner", ["JPEG", "PNG"])
def test_an_image_in_a_private_tiff_tag_is_searched_and_removed(blurrer, inner: str) -> None:
    """The TIFF writer copies every tag it does not rewrite: one of bytes may hold an image file."""
    from PIL import TiffImagePlugin

    face = save(portrait_image().resize((160, 160)), inner, **({"quality": 80} if inner == "JPEG" else {}))
    for picture in (empty_picture(), portrait_image()):
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[50001] = face
        tags.tagtype[50001] = 7  # UNDEFINED: bytes
        result, out = blurrer.process_bytes(save(picture, "TIFF", tiffinfo=tags), "private.tif")
        assert result.status == "blurred" and out is not None and face[16:2000] not in out


@pytest.mark.parametrize("where", ["PNG text", "JPEG comment"])
def test_base64_image_data_outside_xmp_is_searched_and_removed(blurrer, where: str) -> None:
    """A data URI or a bare base64 run of an image in a text chunk or a comment (as web tools and some
    image generators write), not inside an XML property: searched, and blanked when the file is written."""
    face = save(portrait_image().resize((160, 160)), "JPEG", quality=80)
    encoded = base64.b64encode(face)
    text = b"data:image/jpeg;base64," + encoded
    if where == "PNG text":
        info = PngImagePlugin.PngInfo()
        info.add_text("Thumb", text.decode("ascii"))
        data, name = save(empty_picture(), "PNG", pnginfo=info), "x.png"
    else:
        data, name = _with_block("COM", text), "x.jpg"
    result, out = blurrer.process_bytes(data, name)
    assert result.status == "blurred" and out is not None and encoded[64:2000] not in out
    assert any(d.get("embedded") for d in result.detections)


def _app11_packets(box: bytes, size: int = 60000) -> bytes:
    """A JUMBF box as JPEG APP11 segments: "JP", instance 1, sequence numbers; later packets repeat the
    box's 8-byte header (ISO/IEC 19566-5)."""
    segments = b""
    for number, start in enumerate(range(0, len(box), size)):
        payload = b"JP" + struct.pack(">HI", 1, number + 1) + (box[:8] if number else b"") + box[start : start + size]
        segments += b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    return segments


def test_a_c2pa_thumbnail_split_over_app11_segments_is_searched_and_removed(blurrer) -> None:
    """C2PA content credentials (a JUMBF box in APP11 segments) carry a thumbnail of the picture, often too
    big for one segment: whole in none, it was neither searched nor removed, even from a blurred file."""
    thumb = save(portrait_image(), "JPEG", quality=95)
    assert len(thumb) > 65000

    def box(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", 8 + len(data)) + kind + data

    credentials = box(b"jumb", box(b"jumd", b"c2pa.thumbnail.claim.jpeg\x00") + box(b"bidb", thumb))
    for picture in (empty_picture(), portrait_image()):
        base = save(picture, "JPEG", quality=90)
        result, out = blurrer.process_bytes(base[:2] + _app11_packets(credentials) + base[2:], "c2pa.jpg")
        assert result.status == "blurred" and out is not None
        assert thumb[1000:3000] not in out and thumb[-3000:-1000] not in out
    plain = box(b"jumb", box(b"jumd", b"c2pa.assertions\x00") + box(b"json", b'{"action": "c2pa.created"}'))
    base = save(empty_picture(), "JPEG", quality=90)
    assert blurrer.process_bytes(base[:2] + _app11_packets(plain) + base[2:], "plain.jpg")[0].status == "copied"


def _exif_with_raw_thumbnail(pixels: np.ndarray) -> bytes:
    """An Exif block whose IFD1 thumbnail is uncompressed (one strip of 8-bit RGB), as Exif allows."""
    height, width = pixels.shape[:2]
    entries = [(256, 3, 1, width), (257, 3, 1, height), (259, 3, 1, 1), (262, 3, 1, 2), (273, 4, 1, 0),
               (277, 3, 1, 3), (279, 4, 1, pixels.size)]
    ifd0_at, ifd1_at = 8, 8 + 2 + 4
    strip_at = ifd1_at + 2 + 12 * len(entries) + 4
    ifd1 = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 else
                                                  struct.pack("<I", strip_at if tag == 273 else value))
        for tag, kind, count, value in entries) + struct.pack("<I", 0)
    tiff = b"II" + struct.pack("<HI", 42, ifd0_at) + struct.pack("<HI", 0, ifd1_at) + ifd1 + pixels.tobytes()
    return EXIF_HEADER + tiff


def test_an_uncompressed_exif_thumbnail_is_searched_and_removed(blurrer) -> None:
    """Exif lets IFD1 hold the thumbnail as raw RGB strips instead of a JPEG, which no JPEG finder sees."""
    thumb = np.ascontiguousarray(np.asarray(portrait_image().resize((120, 120))))
    exif = _exif_with_raw_thumbnail(thumb)
    for picture in (empty_picture(), portrait_image()):
        result, out = blurrer.process_bytes(save(picture, "JPEG", quality=90, exif=exif), "raw.jpg")
        assert result.status == "blurred" and out is not None
        assert thumb.tobytes()[6000:9000] not in out
        assert any("uncompressed EXIF thumbnail zeroed" in note for note in result.notes)


def test_text_that_names_an_image_format_is_not_an_image(blurrer) -> None:
    result, out = blurrer.process_bytes(_with_block("COM", b"frames from GIF89a and a PNG"), "x.jpg")
    assert result.status == "copied" and out is None


def test_a_motion_photo_written_without_its_video_no_longer_announces_one(blurrer) -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" GCamera:MotionPhoto="1" '
           b'GCamera:MotionPhotoVersion="1" GCamera:MicroVideo="1"/></rdf:RDF></x:xmpmeta>')
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16
    result, out = blurrer.process_bytes(save(empty_picture(), "JPEG", quality=90, xmp=xmp) + video, "motion.jpg")
    assert result.status == "blurred" and out is not None and b"ftypmp42" not in out
    with Image.open(io.BytesIO(out)) as written:
        packet = written.info["xmp"]
    assert b'GCamera:MotionPhoto="0"' in packet and b'GCamera:MicroVideo="0"' in packet
    assert b'GCamera:MotionPhotoVersion="1"' in packet  # the rest byte for byte


def test_a_face_hidden_behind_a_stray_end_marker_is_not_copied(blurrer) -> None:
    """An end-of-image marker put into the scan data: decoders stop there and show the top rows only (no
    face), but the rest of the scan, the face and the plate, is still in the file; taking out two bytes
    shows them. Copied unchanged as clean, they would be published."""
    from piiblur.formats.jpeg import header_segments

    data = EXAMPLE.read_bytes()
    start = header_segments(data)[1] + 2000
    hidden = data[:start] + b"\xff\xd9" + data[start + 2 :]
    result, out = blurrer.process_bytes(hidden, "hidden.jpg")
    assert not result.detections  # the picture as decoders show it holds nothing
    assert result.status == "blurred" and out is not None
    assert data[start + 2 : start + 2000] not in out  # the rest of the scan is gone


# ---- every frame searched, blurred and kept (item 3) ------------------------------------------------------


def frames_of(data: bytes) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(io.BytesIO(data)) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")).copy())
            durations.append(image.info.get("duration", 0))
    return frames, durations


ANIMATIONS = {
    "GIF": {"format": "GIF", "duration": [300, 500], "loop": 0},
    "WEBP": {"format": "WEBP", "duration": [300, 500], "loop": 0, "lossless": True},
    "PNG": {"format": "PNG", "duration": [300, 500], "loop": 0},
    "TIFF": {"format": "TIFF"},
}


@pytest.mark.parametrize("fmt", sorted(ANIMATIONS))
def test_a_face_only_in_the_second_frame_is_blurred_and_every_frame_kept(blurrer, fmt: str) -> None:
    out = io.BytesIO()
    options = dict(ANIMATIONS[fmt])
    empty_picture().save(out, save_all=True, append_images=[portrait_image()], **options)
    data = out.getvalue()
    before, durations = frames_of(data)
    assert len(before) == 2
    result, encoded = blurrer.process_bytes(data, f"anim.{fmt.lower()}")
    assert result.status == "blurred" and encoded is not None, result.reason
    assert any(d.get("frame") == 2 for d in result.detections)
    after, new_durations = frames_of(encoded)
    assert len(after) == 2 and new_durations == durations
    assert detail(after[1], FACE_BOX) < 0.2 * detail(before[1], FACE_BOX)
    assert np.abs(after[0].astype(int) - before[0].astype(int)).max() <= 8  # the empty frame as it was


# ---- LAB stays LAB (item 5) -------------------------------------------------------------------------------


def test_lab_tiff_stays_lab_and_is_blurred(blurrer) -> None:
    from PIL import ImageCms

    to_lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    lab = ImageCms.applyTransform(portrait_image(), to_lab)
    data = save(lab, "TIFF")
    result, out = blurrer.process_bytes(data, "lab.tif")
    assert result.status == "blurred" and out is not None
    with Image.open(io.BytesIO(out)) as image:
        assert image.mode == "LAB"
        rgb = np.asarray(image.convert("RGB"))
    original = np.asarray(lab.convert("RGB"))
    assert detail(rgb, FACE_BOX) < 0.2 * detail(original, FACE_BOX)
    corner = (slice(0, 40), slice(440, 512))  # far from the face and the plate: the colours as they were
    assert np.abs(rgb[corner].astype(int) - original[corner].astype(int)).max() <= 2


def test_c_library_warnings_of_any_decoder_become_notes_not_stray_lines(blurrer, capfd) -> None:
    # an LZW TIFF with garbage in its strip: libtiff prints "Using code not yet in table" on fd 2
    buffer = io.BytesIO()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(buffer, "TIFF", compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    data[40:400] = bytes(np.random.default_rng(1).integers(0, 255, 360, dtype=np.uint8))
    capfd.readouterr()
    result, _ = blurrer.process_bytes(bytes(data), "garbled.tif")
    assert capfd.readouterr().err == ""
    assert result.status == "failed"
    assert any("not yet in table" in note for note in result.notes)


@pytest.mark.parametrize("damage", ["ends after three scans", "marker in the scan"])
def test_a_damaged_or_incomplete_jpeg_is_written_as_it_was_searched(tmp_path: Path, damage: str) -> None:
    """The lossless path writes the input's coefficients back, read by another libjpeg than the one
    that decoded the picture that was searched. A progressive file that ends after its first scans is
    shown by decoders with its missing detail smoothed over; written back whole, its bare blocks would
    look otherwise (61 levels apart in the example portrait), and a damaged stream is recovered by each
    libjpeg in its own way. Such a file is written from the picture that was searched."""
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    picture = Image.fromarray(texture).resize((256, 192), Image.Resampling.BICUBIC)
    data = jpeg_bytes(picture, quality=90, progressive=True)
    scans = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    if damage == "ends after three scans":  # a cut download: no decoder warns
        data = data[: scans[3]] + b"\xff\xd9"
    else:
        middle = (scans[1] + scans[2]) // 2
        data = data[:middle] + b"\xff\xd9" + data[middle + 2 :]
    source = load(tmp_path, "in.jpg", data)
    pixels = source.pixels.copy()
    pixels[:48, :64] = 0
    encoded = encode_image(source, pixels)
    written = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("RGB"), dtype=np.int16)
    assert np.abs(written - pixels.astype(np.int16))[64:, 80:].max() <= 24  # what was searched (requantised)
    assert any(note.startswith("whole picture re-encoded") for note in encoded.notes)


def test_a_whole_progressive_jpeg_keeps_its_coefficients(tmp_path: Path) -> None:
    """The check on progressive files lets a complete one through: the same coefficients, the same picture."""
    picture = Image.fromarray(np.random.default_rng(5).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    data = jpeg_bytes(picture.resize((256, 192), Image.Resampling.BICUBIC), quality=90, progressive=True)
    source = load(tmp_path, "in.jpg", data)
    pixels = source.pixels.copy()
    pixels[:48, :64] = 0
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")


def test_where_a_hostile_tiff_ends_is_found_without_looping() -> None:
    """An IFD that points back to itself, and offsets past the end, end the walk (no hang, no error)."""
    from piiblur.formats._signatures import structure_end

    data = bytearray(save(empty_picture(), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * count, first)  # the next IFD: itself
    assert structure_end("TIFF", bytes(data)) == len(data)
    struct.pack_into("<I", data, 4, len(data) + 1000)  # the first IFD beyond the file
    assert structure_end("TIFF", bytes(data)) == 8


@pytest.mark.parametrize(("fmt", "grey"), [("PNG", True), ("PNG", False), ("TIFF", False)])
def test_a_face_in_12_bit_data_stored_in_16_bits_is_found(blurrer, tmp_path: Path, fmt: str, grey: bool) -> None:
    """16-bit samples that use only the low 12 bits (as some cameras and converters store 12-bit data)
    look near black at the 16-bit range, where no face is found, but any viewer that stretches levels
    shows the face: such data is searched at the range it uses, and the face is blurred."""
    import cv2

    portrait = np.asarray(portrait_image().convert("L") if grey else portrait_image()).astype(np.uint16)
    deep = portrait * 16  # 0 to 4080 of 65535
    path = tmp_path / f"deep.{fmt.lower()}"
    cv2.imwrite(str(path), deep if grey else cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    result, out = blurrer.process_bytes(path.read_bytes(), path.name)
    assert result.status == "blurred" and out is not None
    assert any(d["class"] == "face" for d in result.detections)
    written = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.max() < 4096  # still 16-bit, levels untouched
    x1, y1, x2, y2 = FACE_BOX
    before = deep[y1:y2, x1:x2].astype(np.float64)
    after = (written if grey else cv2.cvtColor(written, cv2.COLOR_BGR2RGB))[y1:y2, x1:x2].astype(np.float64)
    assert np.abs(np.diff(after, axis=0)).mean() < 0.4 * np.abs(np.diff(before, axis=0)).mean()


def test_rows_past_the_frame_header_are_not_copied(blurrer) -> None:
    """A scan that goes on past the rows its frame header declares: every decoder shows the declared rows
    only (an empty sky here), but two patched bytes of the header show the face below. libjpeg warns of
    the extraneous bytes when it reads the whole stream, so the file is written as it was searched (the
    hidden rows gone), not copied."""
    portrait = portrait_image()
    tall = Image.new("RGB", (portrait.width, 2 * portrait.height))
    tall.paste(empty_picture().resize(portrait.size), (0, 0))
    tall.paste(portrait, (0, portrait.height))
    data = bytearray(save(tall, "JPEG", quality=90))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 7] = struct.pack(">H", portrait.height)
    assert not faces_in(blurrer, bytes(data))
    result, out = blurrer.process_bytes(bytes(data), "short.jpg")
    assert result.status == "blurred" and out is not None
    assert any("extraneous bytes" in note for note in result.notes)
    patched = bytearray(out)
    frame = patched.index(b"\xff\xc0")
    patched[frame + 5 : frame + 7] = struct.pack(">H", 2 * portrait.height)
    assert not faces_in(blurrer, bytes(patched))  # the rows are not in the file
    clean = save(portrait, "JPEG", quality=90)
    assert blurrer.process_bytes(clean, "clean.jpg")[0].status == "blurred"  # the face itself: found
    assert blurrer.process_bytes(save(empty_picture(), "JPEG", quality=90), "sky.jpg")[0].status == "copied"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "TIFF-LZW", "TIFF-PACKBITS", "TIFF-JPEG", "GIF"])
def test_rows_past_what_a_png_tiff_or_gif_header_declares_are_not_copied(blurrer, fmt: str) -> None:
    """The same for a PNG whose image data inflates to more rows than IHDR declares, a TIFF whose strip
    holds more rows than ImageLength and a GIF whose LZW data holds more than its descriptor: Pillow reads
    the declared rows, a patched header shows the rest. Written as searched (from the pixels), not
    copied; a sound file is still copied."""
    import zlib

    portrait = portrait_image()
    tall = Image.new("RGB", (portrait.width, 2 * portrait.height))
    tall.paste(empty_picture().resize(portrait.size), (0, 0))
    tall.paste(portrait, (0, portrait.height))
    fmt, _, compression = fmt.partition("-")
    options = {"interlace": False} if fmt == "GIF" else {}
    if compression:  # one strip, so that what it decodes to is counted
        options = {"compression": {"LZW": "tiff_lzw", "PACKBITS": "packbits", "JPEG": "jpeg"}[compression],
                   "strip_size": 2**30}
    data = bytearray(save(tall, fmt, **options))
    if fmt == "GIF":  # the logical screen and the image descriptor (after the global colour table)
        struct.pack_into("<H", data, 8, portrait.height)
        descriptor = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
        assert data[descriptor] == 0x2C
        struct.pack_into("<H", data, descriptor + 7, portrait.height)
    elif fmt == "PNG":
        at = data.index(b"IHDR")
        data[at + 8 : at + 12] = struct.pack(">I", portrait.height)
        data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])) & 0xFFFFFFFF)
    else:
        ifd = struct.unpack_from("<I", data, 4)[0]
        for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", data, ifd)[0], 12):
            if struct.unpack_from("<H", data, entry)[0] == 257:  # ImageLength, SHORT or LONG
                kind = struct.unpack_from("<H", data, entry + 2)[0]
                struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, portrait.height)
    with Image.open(io.BytesIO(bytes(data))) as shown:
        assert shown.size == portrait.size
    assert not faces_in(blurrer, bytes(data))
    result, out = blurrer.process_bytes(bytes(data), f"short.{fmt.lower()}")
    assert result.status == "blurred" and out is not None
    assert any("declares" in note or "holds more" in note for note in result.notes)
    assert len(out) < 0.75 * len(data)  # the hidden rows are not in the file
    assert blurrer.process_bytes(save(empty_picture(), fmt), f"sky.{fmt.lower()}")[0].status == "copied"


def test_an_apng_frame_past_the_count_that_actl_declares_is_not_copied(blurrer) -> None:
    """An APNG whose acTL declares fewer frames than the file holds: decoders show the declared ones (an
    empty sky), the face in the next frame is still in the file. Written with the declared frames only."""
    import zlib

    data = bytearray(save(empty_picture().resize(portrait_image().size), "PNG", save_all=True,
                          append_images=[portrait_image()]))
    at = data.index(b"acTL")
    assert struct.unpack_from(">I", data, at + 4)[0] == 2
    struct.pack_into(">I", data, at + 4, 1)
    struct.pack_into(">I", data, at + 12, zlib.crc32(bytes(data[at : at + 12])) & 0xFFFFFFFF)
    with Image.open(io.BytesIO(bytes(data))) as shown:
        assert getattr(shown, "n_frames", 1) == 1
    result, out = blurrer.process_bytes(bytes(data), "animation.png")
    assert result.status == "blurred" and out is not None
    assert any("acTL declares 1" in note for note in result.notes)
    assert b"fdAT" not in out


def test_a_hidden_image_item_of_a_heif_is_not_copied(blurrer) -> None:
    """A HEIF image item flagged hidden, and no tile, thumbnail or auxiliary image of another: libheif
    lists only the top-level images (an empty sky here), the face in the hidden item is still in the file
    and one bit shows it. Written with the shown picture only; a sound two-image HEIF is still copied."""
    pytest.importorskip("pillow_heif")

    def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:  # 32-bit sizes here
        found = []
        while start + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, start)
            found.append((kind, start + 8, start + size))
            start += size
        return found

    sky = empty_picture().resize(portrait_image().size)
    sound = save(sky, "HEIF", save_all=True, append_images=[sky], quality=90)
    assert blurrer.process_bytes(sound, "two.heic")[0].status == "copied"
    data = bytearray(save(sky, "HEIF", save_all=True, append_images=[portrait_image()], quality=90))
    meta = next(box for box in _boxes(bytes(data), 0, len(data)) if box[0] == b"meta")
    iinf = next(box for box in _boxes(bytes(data), meta[1] + 4, meta[2]) if box[0] == b"iinf")
    for kind, start, _ in _boxes(bytes(data), iinf[1] + 4 + (2 if data[iinf[1]] == 0 else 4), iinf[2]):
        if kind == b"infe" and struct.unpack_from(">H", data, start + 4)[0] == 2:
            data[start + 3] |= 1  # the second image: hidden
    with Image.open(io.BytesIO(bytes(data))) as shown:
        assert getattr(shown, "n_frames", 1) == 1
    result, out = blurrer.process_bytes(bytes(data), "hidden.heic")
    assert result.status == "blurred" and out is not None
    assert any("hidden and part of no image" in note for note in result.notes)
    with Image.open(io.BytesIO(out)) as written:
        assert getattr(written, "n_frames", 1) == 1 and len(out) < 0.8 * len(data)


@pytest.mark.parametrize("segment", [b"\xff\xfe\x00\x02", b"\xff\xee\x00\x02", b"\xff\xe5\x00\x02"],
                         ids=["empty comment", "empty APP14", "empty APP5"])
def test_a_jpeg_with_an_empty_segment_is_blurred_losslessly_in_process(tmp_path: Path, segment: bytes) -> None:
    """An APPn or COM segment that holds nothing is valid JPEG, but jpeglib's marker reader corrupts its heap
    on one: ``pii-blur -j 1`` died of SIGBUS without a word, and a worker of ``-j 2`` with it. jpeglib is now
    given the stream without it; the output keeps it, and every coefficient outside the blur."""
    data = EXAMPLE.read_bytes()
    data = data[:2] + segment + data[2:]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "piiblur", str(tmp_path / "in"), str(tmp_path / "out"), "-j", "1",
                           "--report", str(tmp_path / "report.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "out" / "a.jpg").read_bytes()
    assert written[2:6] == segment  # kept where it was
    assert '"lossless:' in (tmp_path / "report.json").read_text()
    assert detail(Image.open(io.BytesIO(written)), FACE_BOX) < 0.2 * detail(Image.open(EXAMPLE), FACE_BOX)
    before = without_empty_segments(data)
    assert before == EXAMPLE.read_bytes()  # only the empty segment left out
    old, new = dct(before, tmp_path), dct(without_empty_segments(written), tmp_path)
    for a, b in zip(old, new, strict=True):  # the right quarter above the plate's rows: far from any blur
        rows, cols = a.shape[0] * 3 // 4, a.shape[1] * 3 // 4
        assert np.array_equal(a[:rows, cols:], b[:rows, cols:]) and not np.array_equal(a, b)


def with_empty_scans(data: bytes, width: int, height: int, scans: int) -> bytes:
    """A progressive JPEG with ``scans`` more scans of its first component's AC coefficients before its
    EOI, each a few bytes (end-of-band runs over every block, under a Huffman table of their own): valid
    enough for libjpeg to decode each one over the whole picture, adding nothing to it."""
    blocks = -(-width // 8) * -(-height // 8)
    bits = "".join("0" + "1" * 14 for _ in range(-(-blocks // 32767)))  # EOB runs of 32767 blocks
    bits += "1" * (-len(bits) % 8)
    coded = bytearray()
    for i in range(0, len(bits), 8):
        coded.append(int(bits[i:i + 8], 2))
        if coded[-1] == 0xFF:
            coded.append(0)  # a stuffed zero
    table = b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + bytes([1] + [0] * 15) + b"\xe0"  # AC table 0: EOB14
    scan = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x01\x3f\x00" + bytes(coded)
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + table + scan * scans + b"\xff\xd9"


def test_a_jpeg_of_thousands_of_scans_is_refused_before_any_decoder_reads_it(blurrer) -> None:
    """libjpeg decodes every scan over the whole picture, so a small file of many empty scans takes hours
    (20,000 made a 0.5 MB file take 38 s at 8 megapixels): more than MAX_SCANS is refused, with one line;
    a file with a few such scans is still searched and blurred."""
    from piiblur.formats.jpeg import MAX_SCANS
    from piiblur.formats.jpeg.markers import scan_count

    picture = portrait_image()
    progressive = jpeg_bytes(picture, quality=90, progressive=True)
    assert scan_count(progressive) == 10 and scan_count(jpeg_bytes(picture, quality=90)) == 1
    few = with_empty_scans(progressive, *picture.size, 20)
    assert scan_count(few) == 30
    result, out = blurrer.process_bytes(few, "few.jpg")
    assert result.status == "blurred" and out is not None and result.count("face") >= 1
    many = with_empty_scans(progressive, *picture.size, MAX_SCANS)
    result, out = blurrer.process_bytes(many, "many.jpg")
    assert result.status == "failed" and out is None
    assert f"{MAX_SCANS + 10} scans" in result.reason and result.reason.startswith("refused")


def test_a_jpeg_of_thousands_of_scans_appended_to_a_clean_photo_is_not_decoded_nor_copied(blurrer) -> None:
    """The same kind of file hidden after the end of a clean photo is not decoded (it could not be searched
    in time), so it counts as showing something and the photo is written without it."""
    from piiblur.formats._embedded import Embedded, decode

    picture = portrait_image()
    bomb = with_empty_scans(jpeg_bytes(picture, quality=90, progressive=True), *picture.size, 2000)
    assert decode(Embedded("appended", bomb)) is None
    assert decode(Embedded("appended", with_empty_scans(jpeg_bytes(picture, progressive=True), *picture.size, 5)))
    result, out = blurrer.process_bytes(jpeg_bytes(empty_picture(), quality=90) + bomb, "clean.jpg")
    assert result.status == "blurred" and out is not None and bomb[-4000:] not in out


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_a_file_of_more_frames_than_the_limit_is_refused_with_one_line(blurrer, monkeypatch, fmt: str) -> None:
    """Every frame is decoded and searched on its own, so a file of a million tiny frames would take hours:
    over MAX_FRAMES it is refused before its frames are decoded; at the limit it is searched as before."""
    import piiblur.formats as formats

    monkeypatch.setattr(formats, "MAX_FRAMES", 12)
    rng = np.random.default_rng(3)
    frames = [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(13)]

    def file_of(count: int) -> bytes:
        return save(frames[0], fmt, save_all=True, append_images=frames[1:count])

    result, out = blurrer.process_bytes(file_of(13), f"many.{fmt.lower()}")
    assert result.status == "failed" and out is None
    assert result.reason.startswith("refused") and "13 frames" in result.reason
    assert blurrer.process_bytes(file_of(12), f"many.{fmt.lower()}")[0].status == "copied"
