"""Writing blurred pixels back in the source's format, metadata kept, EXIF thumbnails redrawn.

Every input is made here: Pillow writes the image, metadata blocks are built by hand where Pillow cannot.
The "blur" is a black top-left quarter, which is easy to find again in pixels and thumbnails.
"""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin, PngImagePlugin
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from piiblur.formats import SourceImage, encode_image, read_image
from piiblur.formats._exif import EXIF_HEADER, replace_previews, replace_thumbnail, thumbnail_range
from piiblur.formats.jpeg import estimate_quality, header_segments
from piiblur.formats.png import chunks
from piiblur.formats.webp import riff_chunks

W, H = 320, 240
GPS_LATITUDE = ((52, 1), (31, 1), (1234, 100))
ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7


# ---- inputs ------------------------------------------------------------------------------------------


def scene(width: int = W, height: int = H) -> Image.Image:
    """A bright, textured RGB picture (so that a black quarter stands out and thumbnails have detail)."""
    y, x = np.mgrid[0:height, 0:width]
    red = 150 + 60 * np.sin(x / 7.0)
    green = 150 + 60 * np.cos(y / 5.0)
    blue = 180 + 40 * np.sin((x + y) / 11.0)
    return Image.fromarray(np.dstack([red, green, blue]).clip(0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", **options)
    return out.getvalue()


def _ifd(entries: list[tuple[int, int, int, bytes]], offset: int, next_ifd: int, o: str) -> bytes:
    """One IFD at ``offset``; entries are (tag, type, count, value bytes), values over 4 bytes go after it."""
    data_at = offset + 2 + 12 * len(entries) + 4
    head, tail = struct.pack(o + "H", len(entries)), b""
    for tag, kind, count, raw in entries:
        if len(raw) <= 4:
            field = raw.ljust(4, b"\x00")
        else:
            field = struct.pack(o + "I", data_at + len(tail))
            tail += raw + b"\x00" * (len(raw) % 2)
        head += struct.pack(o + "HHI", tag, kind, count) + field
    return head + struct.pack(o + "I", next_ifd) + tail


def _ifd_size(entries: list[tuple[int, int, int, bytes]]) -> int:
    return len(_ifd(entries, 0, 0, "<"))


def exif_block(thumbnail: bytes | None, order: str = "<", maker_note: bytes = b"") -> bytes:
    """A TIFF EXIF block: IFD0 (Make, Exif and GPS pointers), Exif IFD, GPS IFD and an IFD1 thumbnail."""
    o = order
    rationals = b"".join(struct.pack(o + "II", n, d) for n, d in GPS_LATITUDE)
    exif_entries = [(0x9003, ASCII, 20, b"2024:05:06 07:08:09\x00")]
    if maker_note:
        exif_entries.append((0x927C, UNDEFINED, len(maker_note), maker_note))
    gps_entries = [(0x0001, ASCII, 2, b"N\x00"), (0x0002, RATIONAL, 3, rationals)]
    ifd0_size = _ifd_size([(0x010F, ASCII, 8, b"TestCam\x00"), (0x8769, LONG, 1, b""), (0x8825, LONG, 1, b"")])
    exif_at = 8 + ifd0_size
    gps_at = exif_at + _ifd_size(exif_entries)
    ifd1_at = gps_at + _ifd_size(gps_entries)
    thumb_at = ifd1_at + _ifd_size([(0x0103, SHORT, 1, b""), (0x0201, LONG, 1, b""), (0x0202, LONG, 1, b"")])
    ifd0 = [(0x010F, ASCII, 8, b"TestCam\x00"), (0x8769, LONG, 1, struct.pack(o + "I", exif_at)),
            (0x8825, LONG, 1, struct.pack(o + "I", gps_at))]
    ifd1 = [(0x0103, SHORT, 1, struct.pack(o + "H", 6)), (0x0201, LONG, 1, struct.pack(o + "I", thumb_at)),
            (0x0202, LONG, 1, struct.pack(o + "I", len(thumbnail or b"")))]
    header = (b"II" if o == "<" else b"MM") + struct.pack(o + "HI", 42, 8)
    body = (_ifd(ifd0, 8, ifd1_at if thumbnail else 0, o) + _ifd(exif_entries, exif_at, 0, o)
            + _ifd(gps_entries, gps_at, 0, o))
    if thumbnail:
        body += _ifd(ifd1, ifd1_at, 0, o) + thumbnail
    return header + body


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_segments(data: bytes, extra: list[bytes]) -> bytes:
    """Put ``extra`` segments after the file's own APPn segments (before its first DQT)."""
    segments, _ = header_segments(data)
    pos = 2 + sum(len(seg) for marker, seg in segments if 0xE0 <= marker <= 0xEF)
    return data[:pos] + b"".join(extra) + data[pos:]


IPTC = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x05\x00\x07Harbour\x00")
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def rich_jpeg(order: str = "<", **options: object) -> tuple[bytes, bytes]:
    """A JPEG with EXIF (GPS, thumbnail), XMP, ICC, a comment and IPTC; also returns the thumbnail."""
    picture = scene()
    thumbnail = jpeg_bytes(picture.resize((160, 120)), quality=95)
    exif = EXIF_HEADER + exif_block(thumbnail, order)
    data = jpeg_bytes(picture, quality=85, exif=exif, icc_profile=ICC, xmp=XMP, comment=b"made in a test",
                      **options)
    return insert_segments(data, [IPTC]), thumbnail


def load(tmp_path: Path, name: str, data: bytes) -> SourceImage:
    path = tmp_path / name
    path.write_bytes(data)
    return read_image(path)


def blacken(source: SourceImage, value: int | tuple[int, ...] = 0) -> np.ndarray:
    pixels = source.pixels.copy()
    pixels[: pixels.shape[0] // 2, : pixels.shape[1] // 2] = value
    return pixels


def quarters(image: Image.Image) -> tuple[float, float]:
    """Mean grey level of the top-left and bottom-right quarters (a few pixels in from the middle)."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    h, w = grey.shape
    return float(grey[: h // 2 - 4, : w // 2 - 4].mean()), float(grey[h // 2 + 4:, w // 2 + 4:].mean())


def app_segments(data: bytes) -> list[bytes]:
    return [seg for marker, seg in header_segments(data)[0] if 0xE0 <= marker <= 0xEF or marker == 0xFE]


def exif_payload(data: bytes) -> bytes:
    return next(seg[4:] for seg in app_segments(data) if seg[1] == 0xE1 and seg[4:].startswith(EXIF_HEADER))


# ---- JPEG ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [10, 35, 50, 75, 92, 100])
def test_estimate_quality_recovers_ijg_quality(quality: int) -> None:
    image = Image.open(io.BytesIO(jpeg_bytes(scene(64, 64), quality=quality)))
    assert estimate_quality(image.quantization) == quality


@pytest.mark.parametrize("order", ["<", ">"])
def test_jpeg_keeps_metadata_byte_for_byte_and_redraws_thumbnail(tmp_path: Path, order: str) -> None:
    data, old_thumb = rich_jpeg(order)
    source = load(tmp_path, "rich.jpg", data)
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))

    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (W, H))
    assert out.quantization == source.image.quantization
    assert JpegImagePlugin.get_sampling(out) == JpegImagePlugin.get_sampling(source.image) == 2
    assert "about quality 85" in encoded.notes[0] and "4:2:0" in encoded.notes[0]
    assert quarters(out)[0] < 10 < 100 < quarters(out)[1]

    # every APPn/COM segment is there, in order; only the EXIF one differs, inside its thumbnail range
    before, after = app_segments(data), app_segments(encoded.data)
    assert [seg[:2] for seg in after] == [seg[:2] for seg in before]
    old_exif, new_exif = exif_payload(data), exif_payload(encoded.data)
    assert [seg for seg in before if seg[4:] != old_exif] == [seg for seg in after if seg[4:] != new_exif]
    assert IPTC in after and any(XMP in seg for seg in after) and any(ICC in seg for seg in after)
    assert any(seg[1] == 0xFE and seg[4:] == b"made in a test" for seg in after)

    start, end = thumbnail_range(old_exif) or (0, 0)
    assert len(new_exif) == len(old_exif) and end - start == len(old_thumb)
    changed = [i for i in range(len(old_exif)) if old_exif[i] != new_exif[i]]
    length_field = [i for i in changed if not start <= i < end]
    assert length_field and max(length_field) - min(length_field) < 4  # only the 0x0202 value moved
    assert old_thumb not in encoded.data
    assert "EXIF thumbnail regenerated from the blurred image" in encoded.notes

    new_start, new_end = thumbnail_range(new_exif) or (0, 0)
    assert new_start == start and new_end <= end and new_exif[new_end:end].strip(b"\x00") == b""
    thumb = Image.open(io.BytesIO(new_exif[new_start:new_end]))
    assert thumb.size == (160, 120)
    dark, bright = quarters(thumb)
    assert dark < 25 and bright > 100

    exif = out.getexif()
    assert exif[0x010F] == "TestCam"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert exif.get_ifd(0x8825)[1] == "N"
    assert [float(v) for v in exif.get_ifd(0x8825)[2]] == [52.0, 31.0, 12.34]


def test_jpeg_progressive_stays_progressive_without_jpegtran(tmp_path: Path, monkeypatch) -> None:
    # without jpegtran, MozJPEG's transcoder (a wheel) writes the progressive scans; the restart interval goes
    monkeypatch.setattr("piiblur.formats._lossless.jpegtran", lambda: None)
    data = jpeg_bytes(scene(), quality=70, subsampling=0, progressive=True, restart_marker_blocks=5)
    source = load(tmp_path, "prog.jpg", data)
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.info.get("progressive") and out.quantization == source.image.quantization
    assert JpegImagePlugin.get_sampling(out) == 0
    assert any("progressive scans as the input's (MozJPEG" in n and "restart interval dropped" in n
               for n in encoded.notes)
    assert b"\xff\xdd" not in encoded.data[: encoded.data.index(b"\xff\xda")]
    assert quarters(out)[0] < 10


@pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran (libjpeg-turbo-progs) is not installed")
def test_jpeg_progressive_with_restarts_stays_progressive_with_jpegtran(tmp_path: Path) -> None:
    import jpeglib

    data = jpeg_bytes(scene(), quality=70, subsampling=0, progressive=True, restart_marker_blocks=5)
    source = load(tmp_path, "prog.jpg", data)
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.info.get("progressive") and out.quantization == source.image.quantization
    assert b"\xff\xdd\x00\x04\x00\x05" in encoded.data  # DRI: a restart every 5 MCUs, as the input
    assert "progressive scans and a restart every 5 MCUs as the input's (jpegtran, lossless)" in encoded.notes
    (tmp_path / "out.jpg").write_bytes(encoded.data)
    before, after = jpeglib.read_dct(str(tmp_path / "prog.jpg")), jpeglib.read_dct(str(tmp_path / "out.jpg"))
    rows = before.Y.shape[0]
    assert np.array_equal(before.Y[rows // 2 + 1 :], after.Y[rows // 2 + 1 :])  # the untouched lower part
    assert not np.array_equal(before.Y, after.Y)


def test_greyscale_jpeg_round_trip(tmp_path: Path) -> None:
    data = jpeg_bytes(scene().convert("L"), quality=90, comment=b"grey")
    source = load(tmp_path, "grey.jpg", data)
    assert source.mode == "L"
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "L" and out.quantization == source.image.quantization
    assert app_segments(encoded.data) == app_segments(data)
    assert quarters(out)[0] < 10 < 100 < quarters(out)[1]


def test_cmyk_jpeg_round_trip(tmp_path: Path) -> None:
    cmyk = scene().convert("CMYK")
    data = jpeg_bytes(cmyk, quality=88, exif=EXIF_HEADER + exif_block(jpeg_bytes(scene(160, 120), quality=95)))
    source = load(tmp_path, "cmyk.jpg", data)
    assert source.mode == "CMYK"
    encoded = encode_image(source, blacken(source, (0, 0, 0, 255)))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "CMYK" and out.quantization == source.image.quantization
    adobe = [seg for seg in app_segments(encoded.data) if seg[4:9] == b"Adobe"]
    assert len(adobe) == 1
    result = np.asarray(out, dtype=np.int16)
    assert result[: H // 2 - 8, : W // 2 - 8, 3].mean() > 240  # full black ink where it was painted
    assert np.abs(result[H // 2 + 8:, W // 2 + 8:] - source.pixels[H // 2 + 8:, W // 2 + 8:]).mean() < 6
    assert "EXIF thumbnail regenerated from the blurred image" in encoded.notes


def test_mpo_drops_secondary_frames_and_index(tmp_path: Path) -> None:
    left, right = scene(), scene().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    left.save(buffer, format="MPO", save_all=True, append_images=[right], quality=80)
    source = load(tmp_path, "stereo.mpo", buffer.getvalue())
    assert source.format == "MPO"
    encoded = encode_image(source, blacken(source))
    assert any(n.startswith("MPO: 1 secondary frame(s) and the MPF index removed") for n in encoded.notes)
    assert b"MPF\x00" not in encoded.data and encoded.data.count(b"\xff\xd8") == 1
    out = Image.open(io.BytesIO(encoded.data))
    assert out.format == "JPEG" and getattr(out, "n_frames", 1) == 1
    assert quarters(out)[0] < 10


def test_data_after_end_of_image_is_dropped(tmp_path: Path) -> None:
    appended = b"ftypmp42" + bytes(range(256)) * 4  # as a motion photo's video would be
    source = load(tmp_path, "motion.jpg", jpeg_bytes(scene(), quality=80) + appended)
    encoded = encode_image(source, blacken(source))
    assert appended not in encoded.data
    assert any("after the end of the image" in note for note in encoded.notes)


def test_thumbnail_zeroed_when_nothing_fits() -> None:
    thumb = jpeg_bytes(scene(160, 120), quality=50)
    payload = EXIF_HEADER + exif_block(thumb, ">")
    start, end = thumbnail_range(payload) or (0, 0)
    new, note = replace_thumbnail(payload, lambda old, budget: None)
    assert note and "removed" in note
    assert len(new) == len(payload) and new[start:end] == bytes(end - start)
    outside = [i for i in range(len(payload)) if new[i] != payload[i] and not start <= i < end]
    assert outside and max(outside) - min(outside) < 4  # the length value, now 0
    assert thumbnail_range(new) is None


def test_thumbnail_patch_leaves_everything_else_alone() -> None:
    thumb = jpeg_bytes(scene(160, 120), quality=90)
    payload = EXIF_HEADER + exif_block(thumb, "<")
    replacement = b"\xff\xd8" + b"x" * 100 + b"\xff\xd9"
    new, note = replace_thumbnail(payload, lambda old, budget: replacement if old == thumb else None)
    start, end = thumbnail_range(payload) or (0, 0)
    assert note == "EXIF thumbnail regenerated from the blurred image"
    assert thumbnail_range(new) == (start, start + len(replacement))
    assert new[end:] == payload[end:] and new[start:start + len(replacement)] == replacement
    assert new[start + len(replacement):end] == bytes(end - start - len(replacement))


def test_maker_note_preview_is_redrawn_in_place() -> None:
    preview = jpeg_bytes(scene(200, 150), quality=95)
    payload = EXIF_HEADER + exif_block(None, "<", maker_note=b"Maker\x00" + preview + b"\x00tail")
    dark = Image.new("RGB", (W, H))
    new, count, others = replace_previews(payload, lambda old, budget: jpeg_bytes(dark.resize(Image.open(
        io.BytesIO(old)).size), quality=50))
    assert (count, others) == (1, 0) and len(new) == len(payload) and preview not in new
    at = payload.index(preview)
    assert new[:at] == payload[:at] and new[at + len(preview):] == payload[at + len(preview):]
    redrawn = Image.open(io.BytesIO(new[at:at + len(preview)]))
    assert redrawn.size == (200, 150) and quarters(redrawn)[1] < 5


# ---- PNG ----------------------------------------------------------------------------------------------


def test_png_keeps_text_icc_exif_dpi_gamma(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "harbour")
    info.add_text("Comment", "compressed words " * 20, zip=True)
    info.add_itxt("Description", "quai à Marseille", lang="fr", tkey="Beschreibung")
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9))
    exif = EXIF_HEADER + exif_block(jpeg_bytes(scene(160, 120), quality=95))
    buffer = io.BytesIO()
    scene().save(buffer, format="PNG", pnginfo=info, icc_profile=ICC, exif=exif, dpi=(300, 300))
    source = load(tmp_path, "rich.png", buffer.getvalue())
    pixels = blacken(source)
    encoded = encode_image(source, pixels)
    out = Image.open(io.BytesIO(encoded.data))

    assert (out.format, out.mode) == ("PNG", "RGB")
    assert np.array_equal(np.asarray(out), pixels)
    copied = {b"tEXt", b"zTXt", b"iTXt", b"gAMA", b"tIME"}
    assert [c for c in chunks(encoded.data) if c[0] in copied] == [c for c in chunks(source.data) if c[0] in copied]
    assert out.info["icc_profile"] == ICC
    assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert out.text == source.image.text
    new_exif = out.info["exif"]
    assert len(new_exif) == len(exif) and out.getexif().get_ifd(0x8825)[1] == "N"
    start, end = thumbnail_range(new_exif) or (0, 0)
    assert quarters(Image.open(io.BytesIO(new_exif[start:end])))[0] < 25


def test_png_16bit_greyscale_stays_16bit(tmp_path: Path) -> None:
    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 7 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    source = load(tmp_path, "deep.png", buffer.getvalue())
    assert source.mode == "I;16"
    pixels = blacken(source, 1000)
    encoded = encode_image(source, pixels)
    assert chunks(encoded.data)[0][1][8] == 16  # IHDR bit depth
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "I;16" and np.array_equal(np.asarray(out), pixels)


def test_png_greyscale_transparency_and_palette(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    scene().convert("L").save(buffer, format="PNG", transparency=17)
    source = load(tmp_path, "trns.png", buffer.getvalue())
    out = Image.open(io.BytesIO(encode_image(source, blacken(source)).data))
    assert out.mode == "L" and out.info["transparency"] == 17

    buffer = io.BytesIO()
    scene().convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, format="PNG")
    source = load(tmp_path, "palette.png", buffer.getvalue())
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == "P" and "palette kept: blurred pixels take the nearest palette colour" in encoded.notes
    assert out.getpalette() == source.image.getpalette()
    unchanged = np.asarray(source.image)[H // 2:, W // 2:]
    assert np.array_equal(np.asarray(out)[H // 2:, W // 2:], unchanged)


# ---- TIFF ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"])
def test_tiff_keeps_tags_exif_and_compression(tmp_path: Path, compression: str) -> None:
    tags = ImageFileDirectory_v2()
    tags[270] = "a harbour"
    tags[305] = "test suite"
    tags[315] = "someone"
    tags[33432] = "(c) nobody"
    tags[700] = XMP
    buffer = io.BytesIO()
    scene().save(buffer, format="TIFF", tiffinfo=tags, compression="raw", icc_profile=ICC, dpi=(240, 240))
    with_exif = _add_exif_to_tiff(buffer.getvalue())
    source = load(tmp_path, "tagged.tif", with_exif)
    source.image.info["compression"] = compression  # as if the file had been written with it
    pixels = blacken(source)
    encoded = encode_image(source, pixels)
    out = Image.open(io.BytesIO(encoded.data))

    assert (out.format, out.mode, out.info["compression"]) == ("TIFF", "RGB", compression)
    assert np.array_equal(np.asarray(out), pixels)
    for tag in (270, 305, 315, 33432, 700):
        assert out.tag_v2[tag] == source.image.tag_v2[tag]
    assert out.info["icc_profile"] == ICC and out.info["dpi"] == pytest.approx((240, 240))
    exif = out.getexif()
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert exif.get_ifd(0x8825)[1] == "N"
    assert [float(v) for v in exif.get_ifd(0x8825)[2]] == [52.0, 31.0, 12.34]


def _add_exif_to_tiff(data: bytes) -> bytes:
    """Pillow's raw TIFF writer can nest IFDs: rewrite the file with an Exif and a GPS IFD."""
    image = Image.open(io.BytesIO(data))
    tags = ImageFileDirectory_v2()
    for tag in (270, 305, 315, 33432, 700):
        tags[tag] = image.tag_v2[tag]
        tags.tagtype[tag] = image.tag_v2.tagtype[tag]
    tags[0x8769] = {0x9003: "2024:05:06 07:08:09"}
    tags[0x8825] = {1: "N", 2: tuple(n / d for n, d in GPS_LATITUDE)}
    out = io.BytesIO()
    image.save(out, format="TIFF", tiffinfo=tags, icc_profile=image.info["icc_profile"], dpi=image.info["dpi"])
    return out.getvalue()


def test_tiff_16bit_greyscale_stays_16bit(tmp_path: Path) -> None:
    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 13 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF", compression="tiff_lzw")
    source = load(tmp_path, "deep.tif", buffer.getvalue())
    pixels = blacken(source, 40000)
    out = Image.open(io.BytesIO(encode_image(source, pixels).data))
    assert out.mode == source.mode == "I;16" and out.info["compression"] == "tiff_lzw"
    assert np.array_equal(np.asarray(out), pixels)


# ---- WebP ---------------------------------------------------------------------------------------------


def webp_bytes(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="WEBP", **options)
    return out.getvalue()


def test_webp_lossless_stays_lossless_with_metadata(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif_bytes = exif.tobytes()
    picture = scene().convert("RGBA")
    alpha = np.full((H, W), 200, np.uint8)
    alpha[: H // 2, W // 2:] = 0  # colour under transparent pixels must survive too (exact=True)
    picture.putalpha(Image.fromarray(alpha))
    data = webp_bytes(picture, lossless=True, exact=True, exif=exif_bytes, icc_profile=ICC, xmp=XMP)
    source = load(tmp_path, "lossless.webp", data)
    pixels = blacken(source, (0, 0, 0, 255))
    encoded = encode_image(source, pixels)
    kinds = [fourcc for fourcc, _ in riff_chunks(encoded.data)]
    assert b"VP8L" in kinds and b"VP8 " not in kinds
    out = Image.open(io.BytesIO(encoded.data))
    assert out.format == "WEBP" and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), pixels)
    assert out.info["exif"] == source.image.info["exif"] and out.getexif()[0x010F] == "TestCam"
    assert out.info["icc_profile"] == ICC and out.info["xmp"] == source.image.info["xmp"]


def test_webp_lossy_written_lossy_at_quality_90(tmp_path: Path) -> None:
    exif = EXIF_HEADER + exif_block(jpeg_bytes(scene(160, 120), quality=95))
    source = load(tmp_path, "lossy.webp", webp_bytes(scene(), quality=60, exif=exif))
    encoded = encode_image(source, blacken(source))
    kinds = [fourcc for fourcc, _ in riff_chunks(encoded.data)]
    assert b"VP8 " in kinds and b"VP8L" not in kinds
    assert any("quality 90" in note for note in encoded.notes)
    out = Image.open(io.BytesIO(encoded.data))
    assert quarters(out)[0] < 10
    assert out.getexif().get_ifd(0x8825)[1] == "N"
    new_exif = out.info["exif"]
    start, end = thumbnail_range(new_exif if new_exif.startswith(EXIF_HEADER) else EXIF_HEADER + new_exif) or (0, 0)
    assert end > start and "EXIF thumbnail regenerated from the blurred image" in encoded.notes


def test_photoshop_thumbnail_in_app13_is_redrawn(tmp_path: Path) -> None:
    preview = jpeg_bytes(scene(160, 120), quality=95)
    resource = struct.pack(">IIIIIIHH", 1, 160, 120, 480, 57600, len(preview), 24, 1) + preview
    app13 = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x0c\x00\x00" + struct.pack(">I", len(resource)) + resource)
    source = load(tmp_path, "ps.jpg", insert_segments(jpeg_bytes(scene(), quality=80), [app13]))
    encoded = encode_image(source, blacken(source))
    assert preview not in encoded.data
    new = next(seg for seg in app_segments(encoded.data) if seg[1] == 0xED)
    assert len(new) == len(app13) and new[:60] == app13[:60]
    at = app13.index(preview)
    assert quarters(Image.open(io.BytesIO(new[at:at + len(preview)])))[0] < 25


def test_png_imagemagick_raw_exif_with_thumbnail_is_dropped(tmp_path: Path) -> None:
    thumb = jpeg_bytes(scene(160, 120), quality=95)
    blob = EXIF_HEADER + exif_block(thumb)
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(blob):8d}\n{blob.hex()}\n", zip=True)
    info.add_text("Title", "kept")
    buffer = io.BytesIO()
    scene().save(buffer, format="PNG", pnginfo=info)
    source = load(tmp_path, "magick.png", buffer.getvalue())
    encoded = encode_image(source, blacken(source))
    out = Image.open(io.BytesIO(encoded.data))
    assert "Raw profile type exif" not in out.text and out.text["Title"] == "kept"
    assert any("Raw profile type exif" in note for note in encoded.notes)


def test_libjpeg_warnings_become_notes_not_stray_lines(tmp_path: Path, capfd) -> None:
    # one stray byte before the first DQT: decoders go on, but libjpeg inside jpeglib prints a warning
    data = insert_segments(jpeg_bytes(scene(), quality=80), [b"\x00"])
    source = load(tmp_path, "stray.jpg", data)
    capfd.readouterr()
    encoded = encode_image(source, blacken(source))
    assert "libjpeg warned: Corrupt JPEG data: 1 extraneous bytes before marker 0xdb" in encoded.notes
    assert "Corrupt JPEG" not in capfd.readouterr().err
    assert encoded.notes[0].startswith("lossless:") and quarters(Image.open(io.BytesIO(encoded.data)))[0] < 10
