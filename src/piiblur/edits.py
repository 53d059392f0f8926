"""Edits a person made after blurring, and ``pii-blur apply``, which writes them into the output.

An edits file (the sidecar the review page writes, or one written by hand) is JSON::

    {"version": 1, "images": {"sub/photo.jpg": {
        "detections": [{"class": "face", "score": 0.9, "box": [x1, y1, x2, y2], "sphere": {...}}, ...],
        "rejected": [0],
        "added": [{"class": "face", "box": [x1, y1, x2, y2]}]}}}

Boxes are in pixels of the upright picture, as in the blurring report; ``detections`` are that image's
detections from the report (what was blurred), ``rejected`` indexes the ones that are not faces or
plates, ``added`` are what the detector missed (``"applied": true`` once written into the output: a later apply
keeps them blurred and does not blur them twice); ``restored`` lists the rejections an apply wrote. The
review page keeps these straight (``revised``): a written rejection that is accepted again becomes an added
box at the detection's place, blurred by the next apply. On a panorama an added box's x may run past the right
edge (or start left of 0): the box crosses the seam and is blurred on both sides, on the sphere.

``apply`` re-renders exactly the edited files from the INPUT and the OUTPUT, losslessly, the way the
pipeline writes detections:

* a rejected detection's region (its blur mask, feather included), where no kept or added detection's
  mask reaches, is restored from the input: in a JPEG its blocks get the input's DCT coefficients back
  exactly (the blocks that any kept mask reaches stay as they were); in other formats its pixels;
* an added box is blurred like a detection (a soft ellipse for a face, a rounded rectangle for a plate;
  on the sphere for a panorama) and written by the format's writer, which in a JPEG re-encodes only the
  MCUs it touches;
* every other DCT coefficient (or pixel) of the output stays as it was, and its metadata too (the EXIF
  thumbnail is redrawn from the new picture).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from piiblur import blur as blurring
from piiblur.detections import CLASSES, Detections, class_id
from piiblur.formats import ImageError, SourceImage, encode_image, read_image_bytes
from piiblur.orientation import upright_to_stored
from piiblur.pipeline import Settings
from piiblur.projections import camera, gpano, sphere_blur, sphere_detect, sphere_geometry
from piiblur.storage import check_write, read_bytes, write_atomic

EDITS_VERSION = 1


@dataclass
class ImageEdits:
    detections: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)  # rejections an apply wrote: unblurred in the output

    @property
    def empty(self) -> bool:
        return not self.rejected and not self.added and not self.restored

    @property
    def pending(self) -> bool:
        """True when the output does not show these edits yet (a box not written, a rejection not restored
        or a restored one accepted again)."""
        return any(not a.get("applied") for a in self.added) or set(self.rejected) != set(self.restored)

    def as_json(self) -> dict[str, Any]:
        return {"detections": self.detections, "rejected": sorted(set(self.rejected)), "added": self.added,
                "restored": sorted(set(self.restored))}


def revised(before: ImageEdits | None, after: ImageEdits) -> ImageEdits:
    """``after`` as the next state of an image whose edits were ``before``: a detection whose rejection was
    already written (restored in the output) and is now accepted again becomes an added box at its place,
    so the next apply blurs it again; ValueError when a box already written is gone from ``after``."""
    if before is None:
        return after
    written = [a for a in before.added if a.get("applied")]
    if len([a for a in after.added if a.get("applied")]) < len(written):
        raise ValueError("a box already written into the output cannot be removed; blur the input again for that")
    rejected = set(after.rejected)
    # a box standing for a detection rejected again is dropped (until written: then it is in the output)
    added = [a for a in after.added if a.get("applied") or a.get("from_detection") not in rejected]
    for index in sorted(set(before.restored) - rejected):  # unblurred in the output, accepted now: blur again
        if not any(a.get("from_detection") == index for a in added):
            added.append({**after.detections[index], "from_detection": index})
    return ImageEdits(after.detections, after.rejected, added, list(before.restored))


def load_edits(path: Path) -> dict[str, ImageEdits]:
    """The edits file at ``path`` ({} when there is none); ValueError when it is not one."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not an edits file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise ValueError(f"{path}: not an edits file (no 'images')")
    edits: dict[str, ImageEdits] = {}
    for name, entry in data["images"].items():
        edits[str(name)] = check_entry(entry, str(name))
    return edits


def check_entry(entry: Any, name: str) -> ImageEdits:
    """One image's edits, checked: ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"{name}: edits must be an object")
    detections = entry.get("detections", [])
    rejected = entry.get("rejected", [])
    added = entry.get("added", [])
    restored = entry.get("restored", [])
    if not isinstance(detections, list) or not all(_is_record(d) for d in detections):
        raise ValueError(f"{name}: 'detections' must be records with class and box")
    if not isinstance(rejected, list) or not all(isinstance(i, int) and 0 <= i < len(detections) for i in rejected):
        raise ValueError(f"{name}: 'rejected' must index 'detections'")
    if not isinstance(added, list) or not all(_is_record(d) for d in added):
        raise ValueError(f"{name}: 'added' must be records with class and a box x1, y1, x2, y2 (x1 < x2, y1 < y2)")
    if not isinstance(restored, list) or not all(isinstance(i, int) and 0 <= i < len(detections) for i in restored):
        raise ValueError(f"{name}: 'restored' must index 'detections'")
    return ImageEdits(detections, list(rejected), added, list(restored))


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or record.get("class") not in CLASSES:
        return False
    box = record.get("box")
    return (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) and math.isfinite(v)
                                                            for v in box) and box[0] < box[2] and box[1] < box[3])


def save_edits(path: Path, edits: dict[str, ImageEdits], extra: dict[str, Any] | None = None) -> None:
    """Write the edits file atomically (a killed writer leaves the previous one whole)."""
    data = {"version": EDITS_VERSION, **(extra or {}),
            "images": {name: e.as_json() for name, e in sorted(edits.items()) if e.empty is False}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


# -- geometry -------------------------------------------------------------------------------------
def _records_to_detections(records: list[dict[str, Any]], geo: sphere_geometry.Equirect | None) -> Detections:
    """Records (upright pixels; on a panorama with or without their place) as Detections."""
    if not records:
        return Detections.empty()
    if geo is None:
        return Detections(np.array([r["box"] for r in records], np.float32),
                          np.array([float(r.get("score", 1.0)) for r in records]),
                          np.array([class_id(r["class"]) for r in records]))
    return Detections.merge(_on_sphere(r, geo) for r in records)


def _on_sphere(record: dict[str, Any], geo: sphere_geometry.Equirect) -> Detections:
    """A record on the sphere: from its place when it has one, else from its box in panorama pixels (x may
    run past either edge)."""
    place = record.get("sphere")
    if isinstance(place, dict):
        yaw, pitch = float(place["yaw"]), float(place["pitch"])
        width, height = float(place["width_deg"]), float(place["height_deg"])
    else:
        x1, y1, x2, y2 = (float(v) for v in record["box"])
        yaw_a, pitch_a = geo.to_angles(np.array((x1 + x2) / 2), np.array((y1 + y2) / 2))
        yaw, pitch = float((yaw_a + 180.0) % 360.0 - 180.0), float(pitch_a)
        height = (y2 - y1) / geo.full_height * 180.0
        width = (x2 - x1) / geo.full_width * 360.0 * max(math.cos(math.radians(pitch)), 0.05)
    width, height = min(max(width, 0.2), 150.0), min(max(height, 0.2), 150.0)
    fov = min(170.0, 2.0 * max(width, height) + 2.0)
    view = camera.view_of(yaw, pitch, fov, geo.focal)
    half_w = geo.focal * math.tan(math.radians(width) / 2)
    half_h = geo.focal * math.tan(math.radians(height) / 2)
    box = np.array([[view.width / 2 - half_w, view.height / 2 - half_h, view.width / 2 + half_w,
                     view.height / 2 + half_h]], np.float32)
    one = Detections(box, np.array([float(record.get("score", 1.0))]), np.array([class_id(record["class"])]))
    return sphere_detect.to_sphere(one, view, geo)


def footprint(dets: Detections, shape: tuple[int, int], geo: sphere_geometry.Equirect | None,
              strength: float) -> np.ndarray:
    """Boolean (H, W): every pixel the blur of ``dets`` may change (its mask and feather), in stored pixels."""
    mask = np.zeros(shape, bool)
    if not len(dets):
        return mask
    if geo is None:
        for region in blurring.regions(dets, shape, strength):
            rh, rw = region.alpha.shape
            mask[region.y0 : region.y0 + rh, region.x0 : region.x0 + rw] |= region.alpha > 0
        return mask
    mask = sphere_blur.protected(dets, geo, strength)
    # the feather beyond the half-alpha line: at most FEATHER of the shape, grown for the projection
    grow = 2 + math.ceil(float(np.max(np.minimum(dets.widths, dets.heights))) * 0.35)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    pad = grow if geo.wraps else 0
    padded = np.pad(mask.astype(np.uint8), ((0, 0), (pad, pad)), mode="wrap" if geo.wraps else "constant")
    grown = cv2.dilate(padded, kernel) > 0
    return grown[:, pad : pad + shape[1]]


# -- applying -------------------------------------------------------------------------------------
@dataclass
class Applied:
    name: str
    status: str  # written | failed
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def apply_one(source_data: bytes, output_data: bytes, edits: ImageEdits, settings: Settings,
              name: str = "image") -> tuple[bytes, list[str]]:
    """The output file's bytes with ``edits`` applied, and notes; ImageError when it cannot be done."""
    source = read_image_bytes(source_data, Path(name), settings.max_pixels)
    output = read_image_bytes(output_data, Path(name), settings.max_pixels)
    if source.pixels.shape != output.pixels.shape or source.format != output.format:
        raise ImageError("the output is not the input's picture (size or format differ); blur the input again")
    geo = None if source.orientation != 1 else gpano.equirect_for(*source.size, source.data, settings.projection)
    size, shape = source.size, source.pixels.shape[:2]
    rejected_records = [edits.detections[i] for i in sorted(set(edits.rejected))]
    kept_records = [d for i, d in enumerate(edits.detections) if i not in set(edits.rejected)]

    def stored(records: list[dict[str, Any]]) -> Detections:
        dets = _records_to_detections(records, geo)
        return dets if geo is not None else upright_to_stored(dets, source.orientation, size)

    rejected, kept, added = stored(rejected_records), stored(kept_records), stored(edits.added)
    # boxes an earlier apply already wrote are in the output: kept from being restored, not blurred again
    fresh = stored([a for a in edits.added if not a.get("applied")])
    notes: list[str] = []
    restore = footprint(rejected, shape, geo, settings.strength)
    keep = footprint(kept, shape, geo, settings.strength) | footprint(added, shape, geo, settings.strength)
    restore &= ~keep
    if restore.any():
        restored = _restore_jpeg(source, output, restore, keep) if output.format == "JPEG" else None
        if restored is not None:
            output = read_image_bytes(restored, Path(name), settings.max_pixels)
            notes.append(f"{len(rejected)} rejected detection(s): their blocks have the input's coefficients back")
        else:
            pixels = output.pixels.copy()
            pixels[restore] = source.pixels[restore]
            output = _reread(output, pixels, name, settings)
            notes.append(f"{len(rejected)} rejected detection(s): their pixels restored from the input")
    pixels = output.pixels
    if len(fresh):
        pixels = (sphere_blur.blur(pixels, fresh, geo, settings.strength) if geo is not None
                  else blurring.blur(pixels, fresh, settings.strength))
        notes.append(f"{len(fresh)} added box(es) blurred")
    encoded = encode_image(output, pixels)
    return encoded.data, notes + encoded.notes


def _reread(output: SourceImage, pixels: np.ndarray, name: str, settings: Settings) -> SourceImage:
    """``output`` with ``pixels`` written into it, read back (lossless formats: the very pixels)."""
    data = encode_image(output, pixels).data
    return read_image_bytes(data, Path(name), settings.max_pixels)


def _restore_jpeg(source: SourceImage, output: SourceImage, restore: np.ndarray, keep: np.ndarray) -> bytes | None:
    """The output JPEG with the input's DCT blocks back in every MCU that ``restore`` reaches and ``keep``
    does not; None when the two files' block layouts or tables differ (then pixels are restored)."""
    import jpeglib

    from piiblur.formats import _lossless
    from piiblur.formats.jpeg.markers import header_segments, without_empty_segments
    from piiblur.formats.jpeg.markers import restart_interval as _restart_interval

    if source.mode not in ("RGB", "L") or output.mode != source.mode:
        return None
    with tempfile.TemporaryDirectory(prefix="piiblur-apply-") as tmp:
        folder = Path(tmp)
        try:
            (folder / "in.jpg").write_bytes(without_empty_segments(source.data))
            (folder / "out.jpg").write_bytes(without_empty_segments(output.data))
            original, current = jpeglib.read_dct(str(folder / "in.jpg")), jpeglib.read_dct(str(folder / "out.jpg"))
            original.load()
            current.load()
        except (OSError, ValueError, RuntimeError, TypeError, struct.error):  # unreadable: pixels are restored
            return None
        olds = [c for c in (original.Y, original.Cb, original.Cr) if c is not None]
        news = [c for c in (current.Y, current.Cb, current.Cr) if c is not None]
        same = (len(olds) == len(news) and all(a.shape == b.shape for a, b in zip(olds, news, strict=True))
                and np.array_equal(np.asarray(original.samp_factor), np.asarray(current.samp_factor))
                and np.array_equal(np.asarray(original.qt), np.asarray(current.qt)))
        if not same:
            return None
        factors = np.asarray(current.samp_factor).reshape(-1, 2)
        if len(news) == 1:
            factors = np.ones((1, 2), int)
        mcu = (8 * int(factors[:, 0].max()), 8 * int(factors[:, 1].max()))
        chosen = _mcu_any(restore, mcu) & ~_mcu_any(keep, mcu)
        for index, (theirs, mine) in enumerate(zip(olds, news, strict=True)):
            v, h = int(factors[index, 0]), int(factors[index, 1])
            blocks = np.repeat(np.repeat(chosen, v, axis=0), h, axis=1)
            grid = np.zeros(mine.shape[:2], bool)
            rows, cols = min(grid.shape[0], blocks.shape[0]), min(grid.shape[1], blocks.shape[1])
            grid[:rows, :cols] = blocks[:rows, :cols]
            mine[grid] = theirs[grid]
        current.markers = []
        try:
            current.write_dct(str(folder / "new.jpg"), flags=["+OPTIMIZE_CODING"])
        except (OSError, ValueError, RuntimeError):
            return None
        fresh = (folder / "new.jpg").read_bytes()
    kept = [seg for marker, seg in header_segments(output.data)[0] if 0xE0 <= marker <= 0xEF or marker == 0xFE]
    segments, sos = header_segments(fresh)
    others = [seg for marker, seg in segments if not (0xE0 <= marker <= 0xEF or marker == 0xFE)]
    data = b"\xff\xd8" + b"".join(kept) + b"".join(others) + fresh[sos:]
    progressive, restart = bool(current.progressive_mode), _restart_interval(output.data)
    if progressive or restart:
        rewritten, _note = _lossless.relayout(data, progressive, restart)
        data = rewritten or data
    return data


def _mcu_any(mask: np.ndarray, mcu: tuple[int, int]) -> np.ndarray:
    """Boolean (MCU rows, MCU columns): MCUs holding any True pixel of ``mask``."""
    height, width = mask.shape
    rows, cols = -(-height // mcu[0]), -(-width // mcu[1])
    padded = np.zeros((rows * mcu[0], cols * mcu[1]), bool)
    padded[:height, :width] = mask
    return padded.reshape(rows, mcu[0], cols, mcu[1]).any(axis=(1, 3))


def apply_edits(input_root: Path, output_root: Path, edits: dict[str, ImageEdits], settings: Settings,
                only: Sequence[str] | None = None) -> list[Applied]:
    """Write every image whose edits are pending (or those named in ``only``) into ``output_root``, from the
    input and the output."""
    results: list[Applied] = []
    for name in sorted(only if only is not None else (n for n, e in edits.items() if e.pending)):
        entry = edits.get(name)
        if entry is None:
            continue
        source_path = input_root / name if input_root.is_dir() else input_root
        target = output_root / name
        try:
            if not _inside(source_path, input_root) or not _inside(target, output_root):
                raise ImageError("the name leads outside INPUT or OUTPUT_DIR")
            check_write(target, output_root)
            data, notes = apply_one(read_bytes(source_path, settings.max_bytes), read_bytes(target, settings.max_bytes),
                                    entry, settings, name)
            write_atomic(target, data)
            for box in entry.added:  # written: a later apply keeps them, and does not blur them twice
                box["applied"] = True
            entry.restored = sorted(set(entry.rejected))
            results.append(Applied(name, "written", notes=notes))
        except (ImageError, OSError, ValueError) as exc:
            results.append(Applied(name, "failed", str(exc)))
    return results


def _inside(path: Path, root: Path) -> bool:
    resolved, base = path.resolve(), root.resolve()
    return resolved == base or resolved.is_relative_to(base)


def main(argv: Sequence[str], add_detection_options: Callable[[argparse.ArgumentParser], None],
         make_settings: Callable[[argparse.Namespace], Settings]) -> int:
    parser = argparse.ArgumentParser(
        prog="pii-blur apply",
        description="Write an edits file (rejected detections, added boxes; the review page's sidecar) into "
        "OUTPUT_DIR: only the edited images are written again, from INPUT, losslessly (JPEG coefficients "
        "outside the touched blocks stay as they are). Give the blurring run's --strength and --projection.",
        epilog="Exit status: 0 all written, 1 an image failed, 2 a usage problem.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="the input folder (or image) that was blurred")
    parser.add_argument("output", type=Path, metavar="OUTPUT_DIR", help="where the blurred images are")
    parser.add_argument("--edits", type=Path, required=True, metavar="FILE", help="the edits file (JSON)")
    add_detection_options(parser)
    args = parser.parse_args(list(argv))
    try:
        edits = load_edits(args.edits)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.output.is_dir() or not args.input.exists():
        parser.error("INPUT must exist and OUTPUT_DIR must be a folder")
    if _inside(args.output, args.input if args.input.is_dir() else args.input.parent) and args.input.is_dir():
        parser.error("OUTPUT_DIR lies inside INPUT")
    results = apply_edits(args.input, args.output, edits, make_settings(args))
    if any(r.status == "written" for r in results):
        save_edits(args.edits, edits)  # the added boxes are marked as written
    for result in results:
        if result.status == "failed":
            print(f"error: {result.name}: {result.reason}", file=sys.stderr)
    written = sum(r.status == "written" for r in results)
    print(f"apply: {written} image(s) written, {len(results) - written} failed", file=sys.stderr)
    return 1 if written < len(results) else 0
