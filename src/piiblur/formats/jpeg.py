"""JPEG (and MPO) writer: no generation loss, the input's metadata segments byte for byte.

Lossless path (``transplant``): the input's DCT coefficients are read with jpeglib (libjpeg); the blocks
of every MCU that holds a changed pixel (``pixels`` against ``source.pixels``) are replaced by those of
the blurred picture, encoded by libjpeg at the input's quantisation tables, sampling and colour space.
Every other coefficient stays exactly as it was. RGB and greyscale files are written by jpeglib
(baseline, optimised Huffman tables), then given back the input's progressive scans and restart
interval by ``_lossless.relayout``. CMYK/YCCK files (jpeglib cannot write a fourth component) have the
changed blocks dropped in by ``jpegtran -drop``, one blurred region at a time. Where no lossless path
exists (no jpegtran for CMYK, unreadable coefficients), the whole picture is re-encoded with Pillow at
the input's tables, sampling, progressive mode and restart interval, and the notes say so.

Then every APPn and COM segment of the original header is put back in its original order in place of
those the encoder wrote (the encoder's Adobe APP14 wins, since it describes the colour transform
actually used). The EXIF thumbnail, Photoshop and maker-note previews are redrawn from the blurred
pixels in place; images embedded in XMP (GImage, GDepth, XMP thumbnails) are removed, the extended XMP
re-split with a new GUID; MPO secondary frames (with the MPF index) and anything after the first
image are removed.
"""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

from piiblur import native_stderr

from . import Encoded, SourceImage, _lossless
from ._exif import EXIF_HEADER
from ._scrub import Scrub
from ._xmp import EXTENDED_SIGNATURE, XMP_SIGNATURE, extended_guid, gather, split, with_guid

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


def _encoder_options(source: SourceImage, layout: bool = True) -> tuple[dict[str, Any], str]:
    """Pillow's save options that reproduce the input's coding, and a description of them; with
    ``layout`` False, only tables and sampling (progressive mode and restarts left out)."""
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
    if layout and (image.info.get("progressive") or image.info.get("progression")):
        options["progressive"] = True
        described.append("progressive")
    interval = _restart_interval(source.data) if layout else 0
    if interval:
        options["restart_marker_blocks"] = interval
        described.append(f"restart interval {interval}")
    return options, ", ".join(described)


class NotTransplantable(Exception):
    """The lossless path cannot handle this file; the message says why."""


def changed_mcus(source: SourceImage, pixels: np.ndarray, mcu: tuple[int, int]) -> np.ndarray:
    """Boolean (MCU rows, MCU columns): the MCUs (``mcu`` = (height, width) in pixels) with a changed pixel."""
    height, width = pixels.shape[:2]
    rows, cols = -(-height // mcu[0]), -(-width // mcu[1])
    result = np.zeros((rows, cols), bool)
    flat_new, flat_old = pixels.reshape(height, -1), source.pixels.reshape(height, -1)
    for row in range(rows):  # most MCU rows are untouched: compare them whole, cheaply
        band = slice(row * mcu[0], min(height, (row + 1) * mcu[0]))
        if np.array_equal(flat_new[band], flat_old[band]):
            continue
        changed = pixels[band] != source.pixels[band]
        if changed.ndim == 3:
            changed = changed.any(axis=2)
        changed = changed.any(axis=0)
        padded = np.zeros(cols * mcu[1], bool)
        padded[:width] = changed
        result[row] = padded.reshape(cols, mcu[1]).any(axis=1)
    return result


def _components(jpeg: Any) -> list[np.ndarray]:
    return [c for c in (jpeg.Y, jpeg.Cb, jpeg.Cr, jpeg.K) if c is not None]


def transplant(source: SourceImage, pixels: np.ndarray) -> tuple[bytes, list[str]]:
    """The input's coefficients with the changed MCUs replaced, and notes."""
    import jpeglib  # imported here: loading libjpeg costs time that other formats need not pay

    if source.mode not in ("RGB", "L", "CMYK"):
        raise NotTransplantable(f"{source.mode} JPEG: no lossless path for this colour mode")
    _, description = _encoder_options(source, layout=False)
    with tempfile.TemporaryDirectory(prefix="piiblur-") as tmp:
        original_path = Path(tmp) / "in.jpg"
        original_path.write_bytes(source.data)
        try:
            original = jpeglib.read_dct(str(original_path))
            original.load()
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise NotTransplantable(f"jpeglib cannot read the coefficients ({exc})") from exc
        if (original.height, original.width) != source.pixels.shape[:2]:
            raise NotTransplantable("the encoder's block layout differs from the input's")
        factors = np.asarray(original.samp_factor).reshape(-1, 2)  # (vertical, horizontal) per component
        if len(_components(original)) == 1:  # a single-component scan is not interleaved: one block per MCU
            factors = np.ones((1, 2), int)
        mcu = (8 * int(factors[:, 0].max()), 8 * int(factors[:, 1].max()))
        mcus = changed_mcus(source, pixels, mcu)
        progressive, restart = bool(original.progressive_mode), _restart_interval(source.data)
        patch = _PatchEncoder(jpeglib, source, original, Path(tmp))
        if source.mode == "CMYK":  # jpeglib cannot write a fourth component: drop the patches in with jpegtran
            data = _lossless.drop(source.data, _regions(mcus, mcu, pixels, patch), progressive, restart)
            if data is None:
                raise NotTransplantable("CMYK: replacing blocks needs jpegtran (libjpeg-turbo-progs), " + (
                    "not installed" if _lossless.jpegtran() is None else "which refused this stream"))
            layout = [_lossless.layout_note(progressive, restart)] if progressive or restart else []
        else:
            data = _replace_blocks(original, mcus, factors, mcu, pixels, patch, Path(tmp) / "out.jpg")
            layout = []
            if progressive or restart:  # jpeglib writes baseline JPEG without restart markers
                rewritten, note = _lossless.relayout(data, progressive, restart)
                data, layout = rewritten or data, [note]
    share = 100.0 * mcus.sum() / mcus.size
    notes = [f"lossless: {int(mcus.sum())} of {mcus.size} MCUs ({share:.1f}%) {description}; "
             f"every other DCT coefficient kept exactly"]
    return data, notes + layout


def _regions(mcus: np.ndarray, mcu: tuple[int, int], pixels: np.ndarray,
             patch: _PatchEncoder) -> list[_lossless.Region]:
    """The changed MCUs as regions (one per connected group) of exact-cover patches, in pixels."""
    count, labels = cv2.connectedComponents(mcus.astype(np.uint8), connectivity=8)
    height, width = pixels.shape[:2]
    regions: list[_lossless.Region] = []
    for label in range(1, count):
        rows, cols = np.nonzero(labels == label)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        box = (c0 * mcu[1], r0 * mcu[0], min(width, c1 * mcu[1]) - c0 * mcu[1], min(height, r1 * mcu[0]) - r0 * mcu[0])
        patches: list[_lossless.Patch] = []
        for pr0, pr1, pc0, pc1 in _lossless.mcu_rectangles(labels[r0:r1, c0:c1] == label):
            top, bottom = (r0 + pr0) * mcu[0], (r0 + pr1) * mcu[0]
            left, right = (c0 + pc0) * mcu[1], (c0 + pc1) * mcu[1]
            patches.append((left, top, patch.encode(pixels[top:bottom, left:right])))
        regions.append((box, patches))
    return regions


class _PatchEncoder:
    """Encodes MCU-aligned crops of the blurred picture as the input would be: its tables, sampling and
    colour space. No MCU straddles a crop's edges, so a crop's blocks are those a whole-picture encode
    would give."""

    def __init__(self, jpeglib: Any, source: SourceImage, original: Any, folder: Path) -> None:
        self.jpeglib, self.source, self.original, self.path = jpeglib, source, original, folder / "patch.jpg"

    def encode(self, crop: np.ndarray) -> bytes:
        jpeglib, original = self.jpeglib, self.original
        try:
            if self.source.mode == "CMYK":
                # Pillow reads CMYK JPEGs with Adobe's inverted polarity: libjpeg wants the stored samples
                spatial = jpeglib.from_spatial(np.ascontiguousarray(255 - crop),
                                               in_color_space=jpeglib.Colorspace.JCS_CMYK)
                ycck = self.source.image.info.get("adobe_transform") == 2  # Adobe APP14 transform 2: YCCK
                spatial.jpeg_color_space = jpeglib.Colorspace.JCS_YCCK if ycck else jpeglib.Colorspace.JCS_CMYK
            else:
                spatial = jpeglib.from_spatial(np.ascontiguousarray(crop if crop.ndim == 3 else crop[..., None]))
            spatial.samp_factor = original.samp_factor
            spatial.write_spatial(str(self.path), qt=original.qt, quant_tbl_no=original.quant_tbl_no)
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise NotTransplantable(f"jpeglib cannot encode the blurred blocks ({exc})") from exc
        return self.path.read_bytes()

    def blocks(self, crop: np.ndarray) -> Any:
        """The crop's DCT coefficients (a jpeglib DCTJPEG)."""
        self.encode(crop)
        try:
            blurred = self.jpeglib.read_dct(str(self.path))
            blurred.load()
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise NotTransplantable(f"jpeglib cannot read the blurred blocks ({exc})") from exc
        return blurred


def _replace_blocks(original: Any, mcus: np.ndarray, factors: np.ndarray, mcu: tuple[int, int],
                    pixels: np.ndarray, patch: _PatchEncoder, out_path: Path) -> bytes:
    """The input's coefficients with the changed MCUs' blocks replaced, written by jpeglib (baseline)."""
    old = _components(original)
    touched_rows, touched_cols = np.flatnonzero(mcus.any(axis=1)), np.flatnonzero(mcus.any(axis=0))
    if touched_rows.size:
        # encode only the MCU-aligned crop that holds every touched MCU
        r0, r1 = int(touched_rows[0]), int(touched_rows[-1]) + 1
        c0, c1 = int(touched_cols[0]), int(touched_cols[-1]) + 1
        blurred = patch.blocks(pixels[r0 * mcu[0] : r1 * mcu[0], c0 * mcu[1] : c1 * mcu[1]])
        new = _components(blurred)
        if len(old) != len(new):
            raise NotTransplantable("the encoder's block layout differs from the input's")
        region = mcus[r0:r1, c0:c1]
        for index, (mine, theirs) in enumerate(zip(old, new, strict=True)):
            v, h = int(factors[index, 0]), int(factors[index, 1])
            rows, cols = (r1 - r0) * v, (c1 - c0) * h
            target = mine[r0 * v : r0 * v + rows, c0 * h : c0 * h + cols]
            blocks = np.repeat(np.repeat(region, v, axis=0), h, axis=1)[: target.shape[0], : target.shape[1]]
            source_blocks = theirs[: blocks.shape[0], : blocks.shape[1]]
            if source_blocks.shape[:2] != blocks.shape:
                raise NotTransplantable("the encoder's block layout differs from the input's")
            own_table = original.get_component_qt(index).astype(np.float64)
            their_table = blurred.get_component_qt(index).astype(np.float64)
            replacement = source_blocks[blocks]
            if not np.array_equal(own_table, their_table):
                replacement = np.rint(replacement * their_table / own_table).clip(-32768, 32767)
            target[blocks] = replacement.astype(mine.dtype)
    original.markers = []  # the metadata is spliced back byte for byte afterwards
    try:
        original.write_dct(str(out_path), flags=["+OPTIMIZE_CODING"])
    except (OSError, ValueError, RuntimeError) as exc:
        raise NotTransplantable(f"jpeglib cannot write the coefficients ({exc})") from exc
    return out_path.read_bytes()


def _restart_interval(data: bytes) -> int:
    for marker, segment in header_segments(data)[0]:
        if marker == _DRI and len(segment) >= 6:
            return int(struct.unpack_from(">H", segment, 4)[0])
    return 0


def reencode(source: SourceImage, pixels: np.ndarray) -> tuple[bytes, list[str]]:
    """The whole picture encoded by Pillow at the input's tables, sampling, progressive mode and restarts."""
    options, description = _encoder_options(source)
    out = io.BytesIO()
    Image.fromarray(pixels, source.mode).save(out, **options)
    return out.getvalue(), [description]


def extended_xmp(segments: list[tuple[int, bytes]]) -> tuple[dict[str, bytes], list[str]]:
    """The extended XMP packets of a JPEG's header segments by GUID, and the GUIDs of incomplete ones."""
    return gather([_payload(seg) for marker, seg in segments
                   if marker == 0xE1 and _payload(seg).startswith(EXTENDED_SIGNATURE)])


def _strip_xmp_images(old_segments: list[tuple[int, bytes]], scrub: Scrub) -> list[tuple[int, bytes]]:
    """Remove images embedded in the main and extended XMP; the rest of both stays byte for byte.

    An incomplete extended XMP (its chunks do not make up the length they claim) is removed whole."""
    packets, incomplete = extended_xmp(old_segments)
    replaced: dict[str, list[bytes]] = {}
    new_guids: dict[str, str] = {guid: "" for guid in incomplete}
    for guid in incomplete:
        scrub.notes.append(f"extended XMP {guid} removed: incomplete (its chunks do not hold the length it claims)")
    for guid, packet in packets.items():
        stripped = scrub.xmp(packet, "extended XMP")
        if stripped != packet:
            new_guids[guid], payloads = split(stripped)
            replaced[guid] = [_with_payload(0xE1, p) for p in payloads]
    result: list[tuple[int, bytes]] = []
    for marker, seg in old_segments:
        payload = _payload(seg)
        if marker == 0xE1 and payload.startswith(XMP_SIGNATURE):
            original = payload[len(XMP_SIGNATURE):]
            body = scrub.xmp(original)
            guid = extended_guid(body)
            if new_guids.get(guid):
                body = with_guid(body, new_guids[guid])
            if body != original:
                seg = _with_payload(marker, XMP_SIGNATURE + body)
        elif marker == 0xE1 and payload.startswith(EXTENDED_SIGNATURE):
            guid = payload[len(EXTENDED_SIGNATURE):len(EXTENDED_SIGNATURE) + 32].decode("latin-1").upper()
            if guid in replaced:
                for new_seg in replaced.pop(guid):  # all new segments in place of the first old one
                    result.append((marker, new_seg))
                continue
            if guid in new_guids:
                continue
        result.append((marker, seg))
    return result


def encode(source: SourceImage, pixels: np.ndarray) -> Encoded:
    picture = Image.fromarray(pixels, source.mode)
    warned: list[str] = []
    try:
        with native_stderr.captured(warned):
            fresh, notes = transplant(source, pixels)
    except NotTransplantable as why:
        fresh, notes = reencode(source, pixels)
        notes.append(f"whole picture re-encoded: {why}")
    notes.extend(f"libjpeg warned: {line}" for line in warned)

    new_segments, new_sos = header_segments(fresh)
    encoder_adobe = [seg for marker, seg in new_segments if _is_adobe(marker, seg)]
    kept: list[bytes] = []
    late: list[bytes] = []  # segments the input has after its frame header (SOF) stay after it
    after_sof = False
    scrub = Scrub(picture)
    old_segments = _strip_xmp_images(header_segments(source.data)[0], scrub)
    had_mpf = False
    # FlashPix (FPXR) segments can carry a preview split over several segments: it cannot be redrawn, so drop
    fpxr = [seg for marker, seg in old_segments if marker == 0xE2 and _payload(seg).startswith(b"FPXR")]
    drop_fpxr = any(b"\xff\xd8\xff" in seg for seg in fpxr)
    if drop_fpxr:
        notes.append("FlashPix (FPXR) segments holding a preview image removed")
    for marker, segment in old_segments:
        after_sof = after_sof or (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC))
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
            segment = _with_payload(marker, scrub.exif(_payload(segment)))
        elif marker != _COM:  # e.g. the Photoshop thumbnail resource in APP13
            segment = _with_payload(marker, scrub.previews(_payload(segment)))
        (late if after_sof else kept).append(segment)
    kept.extend(encoder_adobe)  # CMYK output without an Adobe segment in the input
    notes.extend(scrub.notes)

    others = [seg for marker, seg in new_segments if not _is_app_or_com(marker)]
    data = b"\xff\xd8" + b"".join(kept) + b"".join(others) + b"".join(late) + fresh[new_sos:]

    if had_mpf:
        frames = getattr(source.image, "n_frames", 1)
        notes.append(f"MPO: {max(frames - 1, 1)} secondary frame(s) and the MPF index removed, not blurred "
                     f"(a second viewpoint or preview need not show the faces where the first frame does)")
    else:
        tail = source.data[image_end(source.data):]
        if tail.strip(b"\x00"):
            notes.append(f"{len(tail)} bytes after the end of the image (appended data) removed")
    return Encoded(data, notes)
