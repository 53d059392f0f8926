"""JPEG (and MPO) writer: the input's quantisation, the input's metadata segments byte for byte.

The pixels are encoded by Pillow with the input's own quantisation tables, chroma subsampling,
progressive mode and restart interval. Then every APPn and COM segment of the original header is put
back in its original order in place of those the encoder wrote (the encoder's Adobe APP14 wins, since
it describes the colour transform actually used). The EXIF thumbnail is redrawn from the blurred
pixels in place; the MPO index (MPF) and anything after the first image are dropped.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from . import Encoded, SourceImage
from ._exif import EXIF_HEADER, redraw_previews, scrub_exif

FORMATS = ("JPEG", "MPO")

_SOI, _EOI, _SOS, _COM, _APP14 = 0xD8, 0xD9, 0xDA, 0xFE, 0xEE
_DRI = 0xDD
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_SAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}

# IJG (libjpeg) standard luminance table, natural order, as Pillow's ``quantization`` lists it
_STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def estimate_quality(quantization: dict[int, list[int]]) -> int:
    """The IJG quality (1-100) whose scaled standard luminance table is closest to table 0."""
    table = np.asarray(quantization[min(quantization)][:64], dtype=np.int64)
    std = np.asarray(_STD_LUMINANCE, dtype=np.int64)
    best, best_err = 50, None
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        expected = np.clip((std * scale + 50) // 100, 1, 255)
        err = int(np.abs(expected - table).sum())
        if best_err is None or err < best_err:
            best, best_err = q, err
    return best


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
        if marker == _SOS:
            return segments, pos
        if marker in _STANDALONE:
            segments.append((marker, data[pos:pos + 2]))
            pos += 2
            continue
        end = pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]
        segments.append((marker, data[pos:end]))
        pos = end
    raise ValueError("JPEG stream has no scan")


def image_end(data: bytes) -> int:
    """Offset just past the first image's EOI (the length when it is missing)."""
    _, pos = header_segments(data)
    while pos + 3 < len(data):
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]  # the SOS (or other) segment
        while pos + 1 < len(data):  # entropy-coded data: a marker is 0xFF then neither 0 nor RSTn
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return len(data)
            following = data[pos + 1] if pos + 1 < len(data) else 0
            if following == 0 or following == 0xFF or 0xD0 <= following <= 0xD7:
                pos += 1 if following == 0xFF else 2
                continue
            break
        if pos + 1 >= len(data) or data[pos + 1] == _EOI:
            return min(pos + 2, len(data))
    return len(data)


def _is_app_or_com(marker: int) -> bool:
    return 0xE0 <= marker <= 0xEF or marker == _COM


def _is_adobe(marker: int, segment: bytes) -> bool:
    return marker == _APP14 and segment[4:9] == b"Adobe"


def _payload(segment: bytes) -> bytes:
    return segment[4:]


def _with_payload(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _encoder_options(source: SourceImage) -> tuple[dict[str, Any], str]:
    image = source.image
    options: dict[str, Any] = {"format": "JPEG"}
    described = []
    quantization = getattr(image, "quantization", None)
    if quantization:
        options["qtables"] = quantization
        described.append(f"re-encoded at the input's quantisation tables (about quality "
                         f"{estimate_quality(quantization)})")
    else:
        options["quality"] = 90
        described.append("re-encoded at quality 90 (the input's tables were not readable)")
    sampling = JpegImagePlugin.get_sampling(image)
    if sampling != -1:
        options["subsampling"] = sampling
        described.append(f"subsampling {_SAMPLING_NAMES.get(sampling, sampling)}")
    if image.info.get("progressive") or image.info.get("progression"):
        options["progressive"] = True
        described.append("progressive")
    segments, _ = header_segments(source.data)
    for marker, segment in segments:
        if marker == _DRI and len(segment) >= 6:
            interval = struct.unpack_from(">H", segment, 4)[0]
            if interval:
                options["restart_marker_blocks"] = interval
                described.append(f"restart interval {interval}")
    return options, ", ".join(described)


def encode(source: SourceImage, pixels: np.ndarray) -> Encoded:
    picture = Image.fromarray(pixels, source.mode)
    options, description = _encoder_options(source)
    out = io.BytesIO()
    picture.save(out, **options)
    fresh = out.getvalue()
    notes = [description]

    new_segments, new_sos = header_segments(fresh)
    encoder_adobe = [seg for marker, seg in new_segments if _is_adobe(marker, seg)]
    kept: list[bytes] = []
    old_segments, _ = header_segments(source.data)
    had_mpf = False
    rgb = picture.convert("RGB")
    # FlashPix (FPXR) segments can carry a preview split over several segments: it cannot be redrawn, so drop
    fpxr = [seg for marker, seg in old_segments if marker == 0xE2 and _payload(seg).startswith(b"FPXR")]
    drop_fpxr = any(b"\xff\xd8\xff" in seg for seg in fpxr)
    if drop_fpxr:
        notes.append("FlashPix (FPXR) segments holding a preview image removed")
    for marker, segment in old_segments:
        if not _is_app_or_com(marker) or (drop_fpxr and segment in fpxr):
            continue
        if marker == 0xE2 and _payload(segment).startswith(b"MPF\x00"):
            had_mpf = True
            continue
        if _is_adobe(marker, segment) and encoder_adobe:
            kept.append(encoder_adobe.pop())
            continue
        if _is_adobe(marker, segment) and len(segment) >= 16 and segment[15] == 0 and picture.mode == "RGB":
            notes.append("Adobe APP14 dropped (it declared RGB storage; the new file is YCbCr)")
            continue
        if marker == 0xE1 and _payload(segment).startswith(EXIF_HEADER):
            payload, exif_notes = scrub_exif(_payload(segment), rgb)
            notes.extend(exif_notes)
            segment = _with_payload(marker, payload)
        elif marker != _COM:  # e.g. the Photoshop thumbnail resource in APP13
            payload, preview_notes = redraw_previews(_payload(segment), rgb)
            notes.extend(preview_notes)
            segment = _with_payload(marker, payload)
        kept.append(segment)
    kept.extend(encoder_adobe)  # CMYK output without an Adobe segment in the input

    others = [seg for marker, seg in new_segments if not _is_app_or_com(marker)]
    data = b"\xff\xd8" + b"".join(kept) + b"".join(others) + fresh[new_sos:]

    if had_mpf:
        notes.append("MPF secondary images removed")
    else:
        tail = source.data[image_end(source.data):]
        if tail.strip(b"\x00"):
            notes.append(f"{len(tail)} bytes after the end of the image (appended data) removed")
    return Encoded(data, notes)
