"""The lossless path: the input's DCT coefficients kept, those of the MCUs holding a changed pixel replaced.

The coefficients are read with jpeglib (libjpeg); the changed MCUs' blocks are those of the blurred
picture encoded at the input's quantisation tables, sampling and colour space. RGB and greyscale files
are written by jpeglib (sequential; with the standard Huffman tables where the input has them, as most
cameras write, else optimised ones, or arithmetic-coded as the input), then given back the input's
progressive scans and restart interval by ``_lossless.relayout``. CMYK/YCCK files (jpeglib cannot write a fourth
component) have the changed blocks dropped in by ``jpegtran -drop``, one blurred region at a time.
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from piiblur.formats import SourceImage, _lossless
from piiblur.formats.jpeg.markers import arithmetic_coded, huffman_tables, restart_interval, without_empty_segments
from piiblur.formats.jpeg.reencode import encoder_options


class NotTransplantable(Exception):
    """The lossless path cannot handle this file; the message says why."""


# The libjpeg build of jpeglib's that the lossless path uses: libjpeg-turbo 2.1, not jpeglib's default
# libjpeg 6b. It reads and writes arithmetic coding (6b refuses it), it is the family of Pillow's decoder,
# whose pixels were searched (on a damaged stream each build recovers in its own way), and it reads and
# writes coefficients faster (an 8000x4000 panorama: 1.00 against 1.18 s). Every output of the evaluation
# data's JPEGs (316 files) is the same bytes with either build.
LIBJPEG = "turbo210"


def _jpeglib() -> Any:
    """jpeglib on its libjpeg-turbo build (imported here: loading libjpeg costs time that other formats
    need not pay)."""
    import jpeglib

    if LIBJPEG in jpeglib.version.versions() and jpeglib.version.get() != LIBJPEG:
        jpeglib.version.set(LIBJPEG)
    return jpeglib


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


# Levels a pixel outside the rewritten MCUs may differ by between the lossless output and the picture
# that was searched: both are the same coefficients through the same decoder, so 0 but for rounding.
SEARCHED_TOLERANCE = 4


def shows_what_was_searched(data: bytes, source: SourceImage, pixels: np.ndarray) -> bool:
    """True when the lossless output ``data`` decodes to ``pixels`` (the searched picture, blurred)
    outside the MCUs that hold a changed pixel and the MCUs next to them (whose edge pixels the
    decoder's chroma upsampling blends with the changed ones), within ``SEARCHED_TOLERANCE``.

    The coefficients are the input's, read by jpeglib's libjpeg, and the picture searched is Pillow's
    decode of the input. Where the input is damaged or incomplete they can differ: a progressive file
    that ends after its first scans is shown by a decoder with its missing detail smoothed over, but
    its coefficients written back into a complete file show the blocks bare (up to 61 levels apart
    in a test picture), and each libjpeg recovers from a damaged stream in its own way.
    """
    layers = getattr(source.image, "layer", None) or [(0, 1, 1, 0)]
    mcu = (8, 8) if len(layers) == 1 else (8 * max(v for _, _, v, _ in layers), 8 * max(h for _, h, _, _ in layers))
    try:
        with Image.open(io.BytesIO(data)) as written:
            decoded = np.asarray(written.convert(source.mode) if written.mode != source.mode else written)
    except (OSError, ValueError, SyntaxError):
        return False
    if decoded.shape != pixels.shape:
        return False
    near = cv2.dilate(changed_mcus(source, pixels, mcu).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    difference = cv2.absdiff(np.ascontiguousarray(decoded), np.ascontiguousarray(pixels))
    rows, cols = near.shape
    channels = 1 if difference.ndim == 2 else difference.shape[2]
    padded = np.zeros((rows * mcu[0], cols * mcu[1] * channels), np.uint8)
    padded[: pixels.shape[0], : pixels.shape[1] * channels] = difference.reshape(pixels.shape[0], -1)
    # the largest difference in each MCU, every channel: over its rows (element-wise), then its columns
    largest = padded.reshape(rows, mcu[0], -1).max(axis=1).reshape(rows, cols, -1).max(axis=2)
    return int(largest[~near].max(initial=0)) <= SEARCHED_TOLERANCE


def _components(jpeg: Any) -> list[np.ndarray]:
    return [c for c in (jpeg.Y, jpeg.Cb, jpeg.Cr, jpeg.K) if c is not None]


def transplant(source: SourceImage, pixels: np.ndarray) -> tuple[bytes, list[str]]:
    """The input's coefficients with the changed MCUs replaced, and notes."""
    arithmetic = arithmetic_coded(source.data)
    jpeglib = _jpeglib()

    if source.mode not in ("RGB", "L", "CMYK"):
        raise NotTransplantable(f"{source.mode} JPEG: no lossless path for this colour mode")
    _, description = encoder_options(source, layout=False)
    with tempfile.TemporaryDirectory(prefix="piiblur-") as tmp:
        original_path = Path(tmp) / "in.jpg"
        original_path.write_bytes(without_empty_segments(source.data))
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
        progressive, restart = bool(original.progressive_mode), restart_interval(source.data)
        patch = _PatchEncoder(jpeglib, source, original, Path(tmp))
        if source.mode == "CMYK":  # jpeglib cannot write a fourth component: drop the patches in with jpegtran
            data = _lossless.drop(source.data, _regions(mcus, mcu, pixels, patch), progressive, restart)
            if data is None:
                raise NotTransplantable("CMYK: replacing blocks needs jpegtran (libjpeg-turbo-progs), " + (
                    "not installed" if _lossless.jpegtran() is None else "which refused this stream"))
            layout = [_lossless.layout_note(progressive, restart)] if progressive or restart else []
        else:
            # the input's own Huffman coding where it is the standard one (an optimising pass costs as
            # much as writing); optimised tables otherwise (jpeglib cannot write custom ones); arithmetic
            # coding where the input has it
            if arithmetic:
                coding = ["+ARITH_CODE"]
            else:
                standard = not progressive and _uses_standard_tables(source.data, jpeglib)
                coding = ["-OPTIMIZE_CODING" if standard else "+OPTIMIZE_CODING"]
            data = _replace_blocks(original, mcus, factors, mcu, pixels, patch, Path(tmp) / "out.jpg", coding)
            layout = []
            if progressive or restart:  # jpeglib writes baseline JPEG without restart markers
                rewritten, note = _lossless.relayout(data, progressive, restart, arithmetic)
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
                if original.jpeg_color_space.name == "JCS_RGB":  # RGB-stored (Adobe transform 0): blocks alike
                    spatial.jpeg_color_space = jpeglib.Colorspace.JCS_RGB
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


def _uses_standard_tables(data: bytes, jpeglib: Any) -> bool:
    """True when every Huffman table of the input is one of libjpeg's standard tables."""
    try:
        tables = huffman_tables(data)
    except (ValueError, IndexError):
        return False
    return bool(tables) and tables <= _standard_tables(jpeglib)


@functools.cache
def _standard_tables(jpeglib: Any) -> frozenset[bytes]:
    """libjpeg's standard Huffman tables, read back from a tiny picture it writes without optimising."""
    with tempfile.TemporaryDirectory(prefix="piiblur-") as tmp:
        path = Path(tmp) / "standard.jpg"
        jpeglib.from_spatial(np.zeros((16, 16, 3), np.uint8)).write_spatial(str(path))
        return frozenset(huffman_tables(path.read_bytes()))


# Touched MCUs closer than this (in MCUs) are encoded in one crop: each crop costs a few milliseconds of
# jpeglib calls, as much as encoding about a thousand MCUs.
_GROUP_GAP = 8
# With more groups than this (thousands of scattered detections), one crop around them all is cheaper.
_MAX_GROUPS = 256


def _groups(mcus: np.ndarray) -> list[tuple[int, int, int, int]]:
    """MCU-aligned rectangles (row0, row1, col0, col1) that together hold every touched MCU: one around
    each group of nearby touched MCUs (the blur of one object, mostly), or one around them all."""
    if not mcus.any():
        return []
    near = cv2.dilate(mcus.astype(np.uint8), np.ones((2 * _GROUP_GAP + 1,) * 2, np.uint8))
    count, labels = cv2.connectedComponents(near, connectivity=8)
    rows, cols = np.nonzero(mcus)
    if count - 1 > _MAX_GROUPS:
        return [(int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)]
    group = labels[rows, cols] - 1
    top, left = np.full(count - 1, mcus.shape[0]), np.full(count - 1, mcus.shape[1])
    bottom, right = np.zeros(count - 1, int), np.zeros(count - 1, int)
    np.minimum.at(top, group, rows)
    np.minimum.at(left, group, cols)
    np.maximum.at(bottom, group, rows + 1)
    np.maximum.at(right, group, cols + 1)
    return [(int(t), int(b), int(lt), int(r)) for t, b, lt, r in zip(top, bottom, left, right, strict=True)]


def _replace_blocks(original: Any, mcus: np.ndarray, factors: np.ndarray, mcu: tuple[int, int],
                    pixels: np.ndarray, patch: _PatchEncoder, out_path: Path, coding: list[str]) -> bytes:
    """The input's coefficients with the changed MCUs' blocks replaced, written by jpeglib (sequential)
    with jpeglib's ``coding`` flags."""
    old = _components(original)
    for r0, r1, c0, c1 in _groups(mcus):  # encode only MCU-aligned crops around the touched MCUs
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
    # by name: jpeglib's Colorspace members all compare equal (a dataclass over an Enum)
    if original.jpeg_color_space.name in ("JCS_YCbCr", "JCS_GRAYSCALE"):
        # written from the coefficients, tables and parameters in hand: given the input's bytes, jpeglib
        # reads the whole input again only to copy parameters it already holds (a quarter of the write for
        # an 8000x4000 panorama). The streams differ only in the encoder's JFIF segment, which splicing
        # replaces: every such JPEG of the evaluation data comes out byte for byte the same either way.
        # Not for other colour spaces: without the input as its model, jpeglib would declare RGB-stored
        # coefficients YCbCr.
        original.content = None
    try:
        original.write_dct(str(out_path), flags=coding)
    except (OSError, ValueError, RuntimeError) as exc:
        raise NotTransplantable(f"jpeglib cannot write the coefficients ({exc})") from exc
    return out_path.read_bytes()
