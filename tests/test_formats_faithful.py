"""Faithful output: lossless JPEG, embedded images, deep colour, HEIF, orientation and broken files.

Every input is made here (helpers from test_formats); the "blur" is a black top-left quarter.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import struct
import zlib
from pathlib import Path

import jpeglib
import numpy as np
import pytest
from PIL import Image
from test_formats import H, W, blacken, exif_block, insert_segments, jpeg_bytes, load, quarters, rich_jpeg, scene

from piiblur.formats import ImageError, encode_image, read_image
from piiblur.formats._exif import EXIF_HEADER
from piiblur.formats._xmp import EXTENDED_SIGNATURE, XMP_SIGNATURE, assemble, strip_images
from piiblur.formats.jpeg import header_segments


def dct(data: bytes, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / "dct.jpg"
    path.write_bytes(data)
    jpeg = jpeglib.read_dct(str(path))
    jpeg.load()
    return [c.copy() for c in (jpeg.Y, jpeg.Cb, jpeg.Cr) if c is not None]


@pytest.mark.parametrize(("mode", "options"), [
    ("RGB", {"subsampling": 0}), ("RGB", {"subsampling": 1}), ("RGB", {"subsampling": 2}),
    ("L", {}), ("RGB", {"subsampling": 2, "progressive": True}),
])
def test_jpeg_coefficients_outside_blurred_mcus_are_identical(tmp_path: Path, mode: str, options: dict) -> None:
    data = jpeg_bytes(scene().convert(mode), quality=80, **options)
    source = load(tmp_path, "in.jpg", data)
    pixels = source.pixels.copy()
    pixels[40:60, 100:130] = 0  # MCUs (16x16 at most) rows 2-3, columns 6-8
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    before, after = dct(data, tmp_path), dct(encoded.data, tmp_path)
    for index, (a, b) in enumerate(zip(before, after, strict=True)):
        assert a.shape == b.shape
        changed = np.argwhere((a != b).any(axis=(2, 3)))
        assert len(changed), f"component {index} unchanged"
        scale_y, scale_x = a.shape[0] * 8 / H, a.shape[1] * 8 / W
        # every changed block lies in an MCU that holds a blackened pixel
        assert changed[:, 0].min() * 8 / scale_y >= 32 and changed[:, 0].max() * 8 / scale_y < 64
        assert changed[:, 1].min() * 8 / scale_x >= 96 and changed[:, 1].max() * 8 / scale_x < 144
    out = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("L"), dtype=np.int32)
    assert out[42:58, 102:128].mean() < 15
    assert len(encoded.data) / len(data) < 1.02 + 0.10  # 2% plus the share of re-encoded MCUs (under 10%)


def test_blurred_blocks_far_apart_are_those_of_a_whole_picture_encode(tmp_path: Path) -> None:
    """Blurs far apart are encoded as separate small crops: each changed block must still be exactly the
    block that encoding the whole blurred picture at the input's tables gives, and no other block changes."""
    data = jpeg_bytes(scene(800, 240), quality=80, subsampling=2)
    source = load(tmp_path, "in.jpg", data)
    pixels = source.pixels.copy()
    rng = np.random.default_rng(3)
    for top, left in ((8, 8), (150, 700), (100, 380), (200, 20)):  # corners, middle: separate crops
        pixels[top : top + 30, left : left + 45] = rng.integers(0, 255, (30, 45, 3), dtype=np.uint8)
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    reference = jpeglib.read_dct(str(tmp_path / "in.jpg"))
    whole = jpeglib.from_spatial(pixels)
    whole.samp_factor = reference.samp_factor
    whole.write_spatial(str(tmp_path / "whole.jpg"), qt=reference.qt, quant_tbl_no=reference.quant_tbl_no)
    before, after = dct(data, tmp_path), dct(encoded.data, tmp_path)
    expected = dct((tmp_path / "whole.jpg").read_bytes(), tmp_path)
    for index, (a, b, c) in enumerate(zip(before, after, expected, strict=True)):
        changed = (a != b).any(axis=(2, 3))
        assert changed.any(), f"component {index} unchanged"
        assert np.array_equal(b[changed], c[changed])
        rows, cols = np.nonzero(changed)
        side = 8 if index == 0 else 16  # pixels a block spans (4:2:0)
        for top, left in ((8, 8), (150, 700), (100, 380), (200, 20)):  # each blur changed its own blocks
            inside = ((rows * side > top - 16) & (rows * side < top + 30)
                      & (cols * side > left - 16) & (cols * side < left + 45))
            assert inside.any()


@pytest.mark.parametrize("progressive", [False, True])
def test_an_rgb_stored_jpeg_is_written_rgb_stored(tmp_path: Path, progressive: bool) -> None:
    """A JPEG whose coefficients are R, G and B (Adobe transform 0, as some editors and scanners write)
    keeps that colour space: declared YCbCr, every pixel outside the blur would change colour."""
    data = jpeg_bytes(scene(), quality=85, subsampling=0, keep_rgb=True, progressive=progressive)
    source = load(tmp_path, "in.jpg", data)
    assert jpeglib.read_dct(str(tmp_path / "in.jpg")).jpeg_color_space.name == "JCS_RGB"
    pixels = source.pixels.copy()
    pixels[40:60, 100:130] = 0  # 8x8 MCUs rows 5-7, columns 12-16
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    before = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int32)
    after = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("RGB"), dtype=np.int32)
    outside = np.ones(before.shape[:2], bool)
    outside[32:64, 96:136] = False  # the touched MCUs, and a block's ringing into its neighbours
    assert np.array_equal(after[outside], before[outside])
    assert after[42:58, 102:128].mean() < 15


@pytest.mark.parametrize("progressive", [False, True])
def test_an_arithmetic_coded_jpeg_keeps_its_coefficients_and_its_coding(tmp_path: Path, progressive: bool) -> None:
    """libjpeg 6b (jpeglib's default) cannot read arithmetic coding: such a file was re-encoded whole until
    the lossless path used libjpeg-turbo. A progressive one gets its scans back from jpegtran, arithmetic-coded
    too. Without jpegtran it stays arithmetic-coded and baseline: the MozJPEG transcoder cannot read
    arithmetic coding, and the notes say the scans were not kept."""
    from piiblur.formats._lossless import jpegtran
    from piiblur.formats.jpeg.coefficients import LIBJPEG
    from piiblur.formats.jpeg.markers import arithmetic_coded

    before_version = jpeglib.version.get()
    jpeglib.version.set(LIBJPEG)
    try:
        path = tmp_path / "arith.jpg"
        flags = ["+ARITH_CODE", "+PROGRESSIVE_MODE"] if progressive else ["+ARITH_CODE"]
        jpeglib.from_spatial(np.asarray(scene())).write_spatial(str(path), qt=80, flags=flags)
        data = path.read_bytes()
        assert arithmetic_coded(data)
        source = load(tmp_path, "in.jpg", data)
        pixels = source.pixels.copy()
        pixels[40:60, 100:130] = 0
        encoded = encode_image(source, pixels)
        assert encoded.notes[0].startswith("lossless:")
        assert arithmetic_coded(encoded.data)
        if progressive and jpegtran() is None:  # the MozJPEG transcoder cannot read arithmetic coding
            assert any("written as baseline" in note for note in encoded.notes)
        else:
            assert progressive == any("progressive scans" in note for note in encoded.notes)
        before, after = dct(data, tmp_path), dct(encoded.data, tmp_path)
    finally:
        jpeglib.version.set(before_version)
    for a, b in zip(before, after, strict=True):  # every changed block lies in an MCU holding a black pixel
        changed = np.argwhere((a != b).any(axis=(2, 3)))
        scale_y, scale_x = a.shape[0] * 8 / H, a.shape[1] * 8 / W
        assert len(changed)
        assert changed[:, 0].min() * 8 / scale_y >= 32 and changed[:, 0].max() * 8 / scale_y < 64
        assert changed[:, 1].min() * 8 / scale_x >= 96 and changed[:, 1].max() * 8 / scale_x < 144
    out = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("L"), dtype=np.int32)
    assert out[42:58, 102:128].mean() < 15


@pytest.mark.parametrize("optimize", [False, True])
def test_jpeg_keeps_the_inputs_standard_huffman_coding(tmp_path: Path, optimize: bool) -> None:
    """A camera's JPEG (libjpeg's standard Huffman tables) is written with the same tables, so the blur
    leaves the file's coding as it was; one with optimised tables gets tables optimised for the output."""
    from piiblur.formats.jpeg import coefficients
    from piiblur.formats.jpeg.markers import huffman_tables

    data = jpeg_bytes(scene(), quality=85, subsampling=2, optimize=optimize)
    source = load(tmp_path, "in.jpg", data)
    pixels = source.pixels.copy()
    pixels[40:60, 100:130] = 0
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    if optimize:  # tables made for the output, not libjpeg's standard ones
        assert not huffman_tables(encoded.data) <= coefficients._standard_tables(jpeglib)
    else:
        assert huffman_tables(encoded.data) == huffman_tables(data)
    out = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("L"), dtype=np.int32)
    assert out[42:58, 102:128].mean() < 15
    before, after = dct(data, tmp_path), dct(encoded.data, tmp_path)
    assert np.array_equal(before[0][8:], after[0][8:])  # rows below the blur: every coefficient kept


def test_jpeg_generations_do_not_drift(tmp_path: Path) -> None:
    data, _ = rich_jpeg()
    first = dct(data, tmp_path)
    sizes = []
    for generation in range(3):
        source = load(tmp_path, f"g{generation}.jpg", data)
        data = encode_image(source, blacken(source)).data
        sizes.append(len(data))
        for a, b in zip(first, dct(data, tmp_path), strict=True):
            assert np.array_equal(a[a.shape[0] * 2 // 3:], b[b.shape[0] * 2 // 3:])  # the lower third is never touched
    assert abs(sizes[2] / sizes[1] - 1) < 0.01 and abs(sizes[1] / sizes[0] - 1) < 0.01


def cmyk_dct(data: bytes, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / "cmyk_dct.jpg"
    path.write_bytes(data)
    jpeg = jpeglib.read_dct(str(path))
    jpeg.load()
    return [c.copy() for c in (jpeg.Y, jpeg.Cb, jpeg.Cr, jpeg.K)]


@pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran (libjpeg-turbo-progs) is not installed")
@pytest.mark.parametrize("transform", [0, 2])  # Adobe APP14: stored as CMYK, or as YCCK (Photoshop's usual)
def test_cmyk_jpeg_keeps_every_coefficient_outside_the_blur(tmp_path: Path, transform: int) -> None:
    spatial = jpeglib.from_spatial(np.ascontiguousarray(255 - np.asarray(scene().convert("CMYK"))),
                                   in_color_space=jpeglib.Colorspace.JCS_CMYK)
    spatial.jpeg_color_space = jpeglib.Colorspace.JCS_YCCK if transform else jpeglib.Colorspace.JCS_CMYK
    spatial.write_spatial(str(tmp_path / "made.jpg"), qt=85)
    data = (tmp_path / "made.jpg").read_bytes()
    source = load(tmp_path, "cmyk.jpg", data)
    assert source.mode == "CMYK" and source.image.info.get("adobe_transform") == transform
    pixels = source.pixels.copy()
    pixels[40:60, 100:130] = (0, 0, 0, 255)  # full black ink
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "CMYK" and out.info.get("adobe_transform") == transform
    result = np.asarray(out, dtype=np.int16)
    assert result[42:58, 102:128, 3].mean() > 240
    for before, after in zip(cmyk_dct(data, tmp_path), cmyk_dct(encoded.data, tmp_path), strict=True):
        changed = np.argwhere((before != after).any(axis=(2, 3)))
        assert len(changed)  # K too: jpeglib alone would leave it as it was
        block_h, block_w = H / before.shape[0], W / before.shape[1]  # pixels per block of this component
        # every changed block lies in an MCU (16x16 at most) that holds a blackened pixel
        assert changed[:, 0].min() * block_h >= 32 and (changed[:, 0].max() + 1) * block_h <= 64
        assert changed[:, 1].min() * block_w >= 96 and (changed[:, 1].max() + 1) * block_w <= 144


def test_cmyk_jpeg_without_jpegtran_is_re_encoded_whole_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("piiblur.formats._lossless.jpegtran", lambda: None)
    source = load(tmp_path, "cmyk.jpg", jpeg_bytes(scene().convert("CMYK"), quality=90))
    encoded = encode_image(source, blacken(source, (0, 0, 0, 255)))
    assert any("whole picture re-encoded: CMYK: replacing blocks needs jpegtran" in n for n in encoded.notes)
    assert Image.open(io.BytesIO(encoded.data)).mode == "CMYK"


def test_every_marker_kind_survives_the_lossless_path(tmp_path: Path) -> None:
    data, _ = rich_jpeg()
    data = insert_segments(data, [b"\xff\xe2" + struct.pack(">H", 14) + b"MPF\x00" + b"\x00" * 8])
    source = load(tmp_path, "rich.jpg", data)
    encoded = encode_image(source, blacken(source))
    old = [seg for m, seg in header_segments(data)[0] if 0xE0 <= m <= 0xEF or m == 0xFE]
    new = [seg for m, seg in header_segments(encoded.data)[0] if 0xE0 <= m <= 0xEF or m == 0xFE]
    exif = next(s for s in old if s[4:].startswith(EXIF_HEADER))
    expected = [s for s in old if s is not exif and not s[4:].startswith(b"MPF\x00")]
    assert [s for s in new if not s[4:].startswith(EXIF_HEADER)] == expected  # XMP, ICC, IPTC, COM, JFIF
    new_exif = next(s for s in new if s[4:].startswith(EXIF_HEADER))
    assert len(new_exif) == len(exif)


# ---- embedded images -------------------------------------------------------------------------------------


def b64_jpeg(image: Image.Image) -> bytes:
    return base64.b64encode(jpeg_bytes(image, quality=80))


def xmp_with_images(tmp_path: Path) -> tuple[bytes, SourceImageT]:
    original = scene()
    thumb = b64_jpeg(original.resize((80, 60)))
    extended = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description GImage:Mime="image/jpeg" '
                b'GImage:Data="' + b64_jpeg(original) + b'" GDepth:Format="RangeInverse"/></rdf:RDF></x:xmpmeta>')
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    main = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmpNote:HasExtendedXMP="' + guid
            + b'" GPano:ProjectionType="equirectangular"><xmp:Thumbnails><rdf:Alt><rdf:li><xmpGImg:image>' + thumb
            + b"</xmpGImg:image></rdf:li></rdf:Alt></xmp:Thumbnails></rdf:Description></rdf:RDF></x:xmpmeta>")
    segments = [b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_SIGNATURE) + len(main)) + XMP_SIGNATURE + main]
    for offset in range(0, len(extended), 30000):
        piece = extended[offset:offset + 30000]
        payload = EXTENDED_SIGNATURE + guid + struct.pack(">II", len(extended), offset) + piece
        segments.append(b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload)
    data = insert_segments(jpeg_bytes(original, quality=85, exif=EXIF_HEADER + exif_block(
        jpeg_bytes(original.resize((160, 120)), quality=95))), segments)
    return data, load(tmp_path, "xmp.jpg", data)


SourceImageT = object


def embedded_images(data: bytes) -> list[Image.Image]:
    """Every image that decodes anywhere in ``data``: JPEG streams, PNG streams and base64 in XMP."""
    found: list[Image.Image] = []
    blobs = [data]
    for match in re.finditer(rb"(?:/9j/|iVBORw0KGgo)[A-Za-z0-9+/=]{64,}", data):
        blobs.append(base64.b64decode(match.group(0) + b"=" * (-len(match.group(0)) % 4)))
    for blob in blobs:
        for signature in (b"\xff\xd8\xff", b"\x89PNG"):
            pos = blob.find(signature)
            while pos >= 0:
                try:
                    image = Image.open(io.BytesIO(blob[pos:]))
                    image.load()
                    found.append(image.convert("RGB"))
                except Exception:
                    pass
                pos = blob.find(signature, pos + 3)
    return found


def test_xmp_images_are_removed_and_extended_xmp_rebuilt(tmp_path: Path) -> None:
    _, source = xmp_with_images(tmp_path)
    encoded = encode_image(source, blacken(source))
    assert any("GImage:Data" in n for n in encoded.notes) and any("xmpGImg:image" in n for n in encoded.notes)
    segments = [seg[4:] for m, seg in header_segments(encoded.data)[0] if m == 0xE1]
    main = next(s for s in segments if s.startswith(XMP_SIGNATURE))
    packets = assemble([s for s in segments if s.startswith(EXTENDED_SIGNATURE)])
    assert len(packets) == 1
    (guid, packet), = packets.items()
    assert guid.encode() in main and b"GPano:ProjectionType" in main and b'GDepth:Format="RangeInverse"' in packet
    assert b"GImage:Data" not in packet and b"xmpGImg:image" not in main
    images = embedded_images(encoded.data)
    assert len(images) == 2  # the picture and its EXIF thumbnail, both blurred
    assert all(quarters(image)[0] < 20 for image in images)


def test_no_unblurred_copy_survives_anywhere(tmp_path: Path) -> None:
    # EXIF thumbnail, maker-note preview, Photoshop thumbnail, MPO frame, XMP images, appended JPEG
    data, source = xmp_with_images(tmp_path)
    assert len([i for i in embedded_images(data) if quarters(i)[0] > 100]) >= 4
    data += jpeg_bytes(scene(), quality=80)  # appended after EOI
    source = load(tmp_path, "all.jpg", data)
    encoded = encode_image(source, blacken(source))
    images = embedded_images(encoded.data)
    assert images and all(quarters(image)[0] < 20 for image in images)


def test_strip_images_keeps_ordinary_text() -> None:
    packet = b'<r dc:title="/9j/ is not an image" xmp:Label="iVBOR"><dc:x>short</dc:x></r>'
    assert strip_images(packet) == (packet, [])


# ---- deep colour, palette, HEIF ------------------------------------------------------------------------------


def deep_pixels(channels: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    planes = [x * 200 + 3, y * 270 + 7, (x + y) * 120 + 11, np.full_like(x, 60000)][:channels]
    return np.dstack(planes).astype(np.uint16)


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_png_stays_16_bit_with_its_chunks(tmp_path: Path, channels: int) -> None:
    import cv2

    pixels = deep_pixels(channels)
    ok, png = cv2.imencode(".png", pixels[..., [2, 1, 0, 3][:channels]])
    assert ok
    raw = png.tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    text = chunk(b"tEXt", b"Comment\x00deep"), chunk(b"gAMA", struct.pack(">I", 45455))
    data = raw[:33] + b"".join(text) + raw[33:]
    source = load(tmp_path, "deep.png", data)
    assert source.pixels.dtype == np.uint16 and np.array_equal(source.pixels, pixels)
    blurred = blacken(source)
    out = encode_image(source, blurred).data
    assert all(c in out for c in text) and out[24] == 16
    assert np.array_equal(load(tmp_path, "out.png", out).pixels, blurred)


def test_16_bit_tiff_stays_16_bit_with_its_tags(tmp_path: Path) -> None:
    import cv2

    pixels = deep_pixels(3)
    ok, tif = cv2.imencode(".tiff", pixels[..., ::-1])
    assert ok
    source = load(tmp_path, "deep.tif", tif.tobytes())
    assert source.pixels.dtype == np.uint16
    blurred = blacken(source)
    encoded = encode_image(source, blurred)
    back = load(tmp_path, "out.tif", encoded.data)
    assert back.pixels.dtype == np.uint16 and np.array_equal(back.pixels, blurred)
    assert "16-bit colour kept" in encoded.notes


def test_heif_round_trip_keeps_format_and_exif(tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    buffer = io.BytesIO()
    scene().save(buffer, format="HEIF", quality=80, exif=exif.tobytes())
    source = load(tmp_path, "x.heic", buffer.getvalue())
    assert source.format == "HEIF"
    out = Image.open(io.BytesIO(encode_image(source, blacken(source)).data))
    assert out.format == "HEIF" and out.size == (W, H) and out.getexif().get(0x010F) == "TestCam"
    assert quarters(out)[0] < 20


# ---- orientation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_orientation_tag_and_stored_layout_are_kept(tmp_path: Path, fmt: str, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    picture = scene(96, 64)
    options = {"lossless": True} if fmt == "WEBP" else {}
    picture.save(buffer, format=fmt, exif=exif.tobytes(), **options)
    source = load(tmp_path, f"o.{fmt.lower()}", buffer.getvalue())
    if fmt == "TIFF" and orientation != 1:
        # Pillow decodes a TIFF upright and drops the tag; the stored layout and the tag still come back
        assert source.orientation == orientation and source.size == (96, 64)
        assert source.upright_rgb().shape[:2] == ((96, 64) if orientation >= 5 else (64, 96))
        assert (source.pixels == np.asarray(picture)).all()
        out = Image.open(io.BytesIO(encode_image(source, blacken(source)).data))
        assert (out.tag_v2[256], out.tag_v2[257], out.tag_v2.get(0x0112)) == (96, 64, orientation)
        return
    assert source.orientation == orientation
    upright = source.upright_rgb()
    assert upright.shape[:2] == ((96, 64) if orientation >= 5 else (64, 96))
    out = Image.open(io.BytesIO(encode_image(source, blacken(source)).data))
    assert out.size == (96, 64) and out.getexif().get(0x0112) == orientation


# ---- broken input ----------------------------------------------------------------------------------------------


def _broken_inputs() -> dict[str, bytes]:
    good_jpeg = jpeg_bytes(scene(), quality=80, progressive=True)
    png = io.BytesIO()
    scene().save(png, format="PNG")
    good_png = png.getvalue()
    idat = good_png.index(b"IDAT")
    corrupt_png = bytearray(good_png)
    corrupt_png[idat + 10:idat + 40] = b"\x00" * 30
    return {
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "truncated.png": good_png[: len(good_png) // 2],
        "header_only.png": good_png[:40],
        "corrupt_stream.png": bytes(corrupt_png),
        "garbage.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg at all" * 10,
        "empty.png": b"",
        "text.tif": b"hello, world",
    }


@pytest.mark.parametrize("name", sorted(_broken_inputs()))
def test_broken_files_raise_one_clear_image_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(_broken_inputs()[name])
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    scene(400, 300).save(path)
    with pytest.raises(ImageError, match="pixel limit"):
        read_image(path, max_pixels=10_000)
    assert read_image(path).size == (400, 300)


def test_a_segment_after_the_frame_header_stays_after_it(tmp_path):
    """A duplicate ICC chunk after SOF (as in Pillow's icc-after-SOF.jpg) stays after it: moved before SOF, it
    would make two chunks "1 of 1" and readers would drop the profile."""
    import io as _io

    from PIL import Image as _Image

    from piiblur.formats import encode_image as _encode
    from piiblur.formats import read_image as _read
    from piiblur.formats.jpeg import header_segments

    buf = _io.BytesIO()
    _Image.new("L", (32, 32), 128).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    segments, _ = header_segments(data)
    payload = b"ICC_PROFILE\x00\x01\x01profile"
    icc = b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload
    sof = next(seg for marker, seg in segments if marker == 0xC0)
    sof_end = data.index(sof) + len(sof)
    path = tmp_path / "late_icc.jpg"
    app0_end = 2 + len(segments[0][1])
    path.write_bytes(data[:app0_end] + icc + data[app0_end:sof_end] + icc + data[sof_end:])
    source = _read(path)
    assert source.image.info.get("icc_profile") == b"profile"
    pixels = source.pixels.copy()
    pixels[8:16, 8:16] = 0
    out = _encode(source, pixels).data
    markers = [marker for marker, _ in header_segments(out)[0]]
    assert markers.count(0xE2) == 2 and markers.index(0xE2) < markers.index(0xC0) < len(markers) - 1 - markers[
        ::-1].index(0xE2)
    assert _Image.open(_io.BytesIO(out)).info.get("icc_profile") == b"profile"


def test_avif_keeps_its_exif_and_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    buffer = io.BytesIO()
    scene().save(buffer, format="AVIF", exif=exif.tobytes(), quality=90)
    source = load(tmp_path, "in.avif", buffer.getvalue())
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.format == "AVIF" and out.size == Image.open(io.BytesIO(buffer.getvalue())).size
    assert out.getexif()[0x0112] == 6 and out.getexif()[0x010F] == "TestCam"
    assert any("orientation kept in the container's irot/imir" in n for n in encoded.notes)


def test_avif_exif_with_only_the_default_orientation_is_explained() -> None:
    # Pillow cannot write such a file (the shared exif.avif is one): the note is checked on its own
    from piiblur.formats.heif import _avif_orientation_note

    exif = Image.Exif()
    exif[0x0112] = 1
    assert _avif_orientation_note(exif.tobytes()).startswith("EXIF held only orientation 1")
    exif[0x010F] = "TestCam"
    assert _avif_orientation_note(exif.tobytes()).startswith("EXIF re-serialised")


@pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran (libjpeg-turbo-progs) is not installed")
def test_cmyk_ellipses_change_only_their_own_mcus(tmp_path: Path) -> None:
    import cv2

    from piiblur.formats.jpeg import changed_mcus

    data = jpeg_bytes(scene(320, 240).convert("CMYK"), quality=90)  # Pillow: 4:4:4, 8x8 MCUs
    source = load(tmp_path, "cmyk.jpg", data)
    pixels = source.pixels.copy()
    for centre in ((60, 60), (230, 150)):  # two regions, each an ellipse: many MCU runs
        cv2.ellipse(pixels, centre, (40, 30), 20, 0, 360, (0, 0, 0, 255), -1)
    encoded = encode_image(source, pixels)
    assert encoded.notes[0].startswith("lossless:")
    touched = changed_mcus(source, pixels, (8, 8))
    for before, after in zip(cmyk_dct(data, tmp_path), cmyk_dct(encoded.data, tmp_path), strict=True):
        changed = (before != after).any(axis=(2, 3))
        assert changed.any() and not (changed & ~touched).any()
    out = np.asarray(Image.open(io.BytesIO(encoded.data)), dtype=np.int16)
    assert out[60, 60, 3] > 240 and out[150, 230, 3] > 240


def test_mcu_rectangles_cover_the_changed_mcus_exactly() -> None:
    from piiblur.formats._lossless import mcu_rectangles

    rng = np.random.default_rng(3)
    for _ in range(50):
        grid = rng.random((9, 13)) < 0.35
        cover = np.zeros(grid.shape, int)
        for r0, r1, c0, c1 in mcu_rectangles(grid):
            cover[r0:r1, c0:c1] += 1
        assert np.array_equal(cover, grid.astype(int))  # every changed MCU once, nothing else
