"""``pii-blur audit DIR``: check finished output before publishing.

Every image in DIR, every later frame and every image a file carries (EXIF
thumbnail, previews, XMP images, MPO frames: ``formats._embedded``) is searched
again, at a lower threshold than blurring uses (``AUDIT_SHARE`` of it). What is
found is then sorted:

* **already blurred**, and ignored: the detail inside the box is gone. Detail
  is the RMS of the Laplacian of the grey levels, measured at the box's own
  scale (the window resampled so that the box is at most ``DETAIL_SIZE`` pixels
  tall; smaller boxes at their own pixels), in the central 60% of the box
  (where eyes, mouth or characters are), and compared with a ring of the same
  image around it (1.8 to 3 box half-sizes from the centre, outside the blur's
  ellipse and its feather). The blur leaves under one cycle across a shape, so
  its Laplacian is a few grey levels, while a face's is tens. Measured on
  faces_dlib (9 photos, the finds at the audit's threshold): faces of 10 px and
  more that pii-blur blurred 2-7 (one of 64 px, 17), unblurred faces 20-490 and
  0.21-5.6 times their ring; blurred faces of 6-8 px, whose blur is its minimum
  of 2 px, 19-37 and 0.11-0.28 of their ring. So a box is blurred when its
  detail is under ``BLURRED_ABSOLUTE`` or under ``BLURRED_RELATIVE`` of its
  ring (on the faces_dlib originals this takes 3 unblurred finds as blurred,
  small faces in one crowd photo, which is still flagged by its others), or
  when ``BLURRED_SHARE`` of the box is smooth (a blurred face and the collar
  beside it, seen as one face).
* **not confirmed**, and ignored: a find is kept only when a second look, a
  crop centred on it at a larger scale, finds it again with the full blurring
  threshold, unblurred. Texture that merely resembles a face at a few pixels
  rarely survives it; a face or plate does. A panorama is searched as the
  pipeline searches it (views of the sphere down to ``PANORAMA_THRESHOLD_SHARE``
  of the audit's thresholds), and a find under the blurring threshold is kept
  only when the pipeline's closer look on the sphere finds it with the full
  blurring threshold.
* **small**: under ``MIN_SIZE`` pixels, listed apart in the report, not counted.
* **left**: listed with file, class, score and place (yaw and pitch on a
  panorama), in the JSON report and on a PNG contact sheet of crops.

Exit status: 0 when nothing is left, 1 when something is (or a file could not
be checked: an unchecked file is never passed as clean), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from piiblur import __version__
from piiblur.classes import DEFAULT_THRESHOLDS
from piiblur.contact_sheet import grid
from piiblur.detections import CLASSES, Detections, box_overlap
from piiblur.formats import IMAGE_EXTENSIONS, ImageError, read_image_bytes
from piiblur.formats._embedded import decode, embedded_images
from piiblur.orientation import as_stored, embedded_upright, later_frames_orientation
from piiblur.pipeline import Blurrer, Settings
from piiblur.projections import sphere_detect, sphere_geometry
from piiblur.projections.equirect import PANORAMA_THRESHOLD_SHARE, Equirectangular
from piiblur.projections.planar import detect_planar
from piiblur.storage import read_bytes, write_atomic

AUDIT_SHARE = 2 / 3  # the audit searches down to this share of each class's blurring threshold
DETAIL_SIZE = 32  # boxes are measured resampled to at most this many pixels tall
BLURRED_ABSOLUTE = 12.0  # RMS Laplacian (grey levels) under which the inside of a box is blurred
BLURRED_RELATIVE = 0.3  # or under this share of its surroundings' detail
BLURRED_SHARE = 1 / 3  # or this share of the box is blurred
# Finds under this many pixels tall (in the picture searched) are listed apart and do not count: a face of
# 6 px has eyes of a pixel or two and identifies nobody, and at that size the detector's finds in ordinary
# texture and printed posters are common (pii-blur's output of faces_dlib: one such 6-px find is all that is
# left). ``--min-size 0`` counts everything.
MIN_SIZE = 8
STORED = "picture as stored"  # a turned picture searched in its stored grid, as a viewer ignoring the tag shows it
FLAT = "picture searched flat"  # a 2:1 picture without GPano whose edges do not meet, searched as a flat photo too
CONFIRM_HEIGHT = 64
CONFIRM_LONGEST = 1280  # the second look's crop is at least doubled, but kept under this many pixels
EXIT_CLEAN, EXIT_LEFT, EXIT_USAGE = 0, 1, 2


@dataclass
class Finding:
    file: str
    where: str  # "picture", "frame N" or the embedded image (e.g. "EXIF thumbnail")
    cls: str
    score: float
    box: list[float]  # x1, y1, x2, y2 in the upright picture's (or embedded image's) pixels
    detail: float
    surroundings: float
    sphere: dict[str, float] | None = None  # yaw, pitch, angular size on a panorama

    def place(self) -> str:
        if self.sphere:
            return f"yaw {self.sphere['yaw']:.1f}, pitch {self.sphere['pitch']:.1f}"
        x1, y1, x2, y2 = self.box
        return f"x {x1:.0f}-{x2:.0f}, y {y1:.0f}-{y2:.0f}"


@dataclass
class FileAudit:
    file: str
    status: str = "clean"  # clean | flagged | failed
    reason: str = ""
    projection: str = "planar"
    searched: list[str] = field(default_factory=list)  # picture, frames, embedded images
    blurred: int = 0  # finds ignored as already blurred
    unconfirmed: int = 0  # finds a second look did not confirm
    findings: list[Finding] = field(default_factory=list)
    small: list[Finding] = field(default_factory=list)  # left, but under the minimum size: listed, not counted


@dataclass
class Audit:
    root: str
    files: list[FileAudit] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for entry in self.files for f in entry.findings]

    @property
    def failed(self) -> list[FileAudit]:
        return [entry for entry in self.files if entry.status == "failed"]

    @property
    def clean(self) -> bool:
        return not self.findings and not self.failed


# -- detail ---------------------------------------------------------------------------------------
def detail(rgb: np.ndarray, box: Sequence[float], wraps: bool = False) -> tuple[float, float, float]:
    """(inside, surroundings, blurred share): RMS Laplacian of the grey levels in the box's central 60% and
    in a ring around it, measured with the box at most ``DETAIL_SIZE`` pixels tall, and the share of the
    box whose neighbourhood (a quarter of the box) has detail under ``is_blurred``'s limits. ``wraps``:
    columns continue across the left and right edges (a full panorama)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = rgb.shape[:2]
    gy0, gy1 = max(0, int(cy - 3 * h / 2)), min(height, math.ceil(cy + 3 * h / 2) + 1)
    gx0, gx1 = int(cx - 3 * w / 2), math.ceil(cx + 3 * w / 2) + 1
    if wraps:
        cols = np.mod(np.arange(gx0, gx1), width)
    else:
        gx0, gx1 = max(0, gx0), min(width, gx1)
        cols = np.arange(gx0, gx1)
    if gy1 - gy0 < 3 or cols.size < 3:
        return 0.0, 0.0, 1.0
    window = np.ascontiguousarray(rgb[gy0:gy1][:, cols])
    grey = (cv2.cvtColor(window, cv2.COLOR_RGB2GRAY) if window.ndim == 3 else window).astype(np.float32)
    scale = min(1.0, DETAIL_SIZE / h)
    if scale < 1.0:
        size = (max(3, round(grey.shape[1] * scale)), max(3, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    rows, columns = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    dx = np.abs(gx0 + (columns + 0.5) * (cols.size / grey.shape[1]) - cx) / (w / 2)
    dy = np.abs(gy0 + (rows + 0.5) * ((gy1 - gy0) / grey.shape[0]) - cy) / (h / 2)
    usable = np.zeros(grey.shape, bool)
    usable[1:-1, 1:-1] = True  # the Laplacian's border rows and columns see a reflected edge
    inner = usable & (dx <= 0.6) & (dy <= 0.6)
    ring = usable & (np.hypot(dx, dy) >= 1.8) & (dx <= 3) & (dy <= 3)
    inside = float(np.sqrt(np.mean(lap[inner] ** 2))) if inner.any() else 0.0
    around = float(np.sqrt(np.mean(lap[ring] ** 2))) if ring.any() else 0.0
    k = max(3, round(0.25 * h * min(1.0, DETAIL_SIZE / h)))
    local = np.sqrt(cv2.blur(lap**2, (k, k)))
    box_area = usable & (dx <= 1) & (dy <= 1)
    smooth = local < BLURRED_ABSOLUTE
    share = float(smooth[box_area].mean()) if box_area.any() else 1.0
    return inside, around, share


def is_blurred(inside: float, around: float, share: float = 0.0) -> bool:
    """True when the box's inside lacks detail, absolutely or against its surroundings, or when a third
    of the box is blurred (the detector seeing part of a blurred object and what lies beside it)."""
    return inside < BLURRED_ABSOLUTE or inside < BLURRED_RELATIVE * around or share >= BLURRED_SHARE


# -- the audit ------------------------------------------------------------------------------------
def audit_settings(settings: Settings, share: float = AUDIT_SHARE) -> Settings:
    """``settings`` with every class's threshold lowered to ``share`` of it."""
    lowered = {name: settings.thresholds.get(name, DEFAULT_THRESHOLDS[name]) * share for name in DEFAULT_THRESHOLDS}
    return replace(settings, thresholds=lowered)


class Auditor:
    """Searches images for what is left: ``settings`` are the blurring run's (thresholds as blurred)."""

    def __init__(self, settings: Settings, share: float = AUDIT_SHARE, min_size: float = MIN_SIZE) -> None:
        self.min_size = min_size
        self.sure = {name: settings.thresholds.get(name, DEFAULT_THRESHOLDS[name]) for name in DEFAULT_THRESHOLDS}
        self.settings = audit_settings(settings, share)
        self.blurrer = Blurrer(self.settings)

    def audit_file(self, path: Path, label: str) -> FileAudit:
        entry = FileAudit(label)
        try:
            data = read_bytes(path, self.settings.max_bytes)
            image = read_image_bytes(data, path, self.settings.max_pixels)
        except (OSError, ImageError) as exc:
            entry.status, entry.reason = "failed", str(exc)
            return entry
        projection = self.blurrer.projection(image)
        geo = getattr(projection, "geo", None)
        entry.projection = "equirectangular" if geo is not None else "planar"
        upright = image.upright_rgb()
        self._search(entry, "picture", upright, geo)
        if image.orientation != 1:  # as the pipeline searches it (orientation.search_both_ways)
            self._search(entry, STORED, as_stored(upright, image.orientation), None)
        if isinstance(projection, Equirectangular) and projection.searched_flat_too(upright):  # as blurring does
            self._search(entry, FLAT, upright, None)
        for index, frame in enumerate(image.later, start=2):
            frame_geo = geo if frame.pixels.shape[:2] == image.pixels.shape[:2] else None
            self._search(entry, f"frame {index}", frame.upright_rgb(later_frames_orientation(image)), frame_geo)
        for item in embedded_images(image):
            picture = decode(item)
            if picture is None:
                entry.status, entry.reason = "failed", f"{item.where} cannot be decoded, so it was not checked"
                continue
            self._search(entry, item.where, embedded_upright(picture, image.orientation), None)
        if entry.status != "failed" and entry.findings:
            entry.status = "flagged"
        return entry

    def _search(self, entry: FileAudit, where: str, rgb: np.ndarray, geo: sphere_geometry.Equirect | None) -> None:
        entry.searched.append(where)
        if geo is not None:
            # as the pipeline searches a panorama (views searched down to a share of the threshold, doubtful
            # finds looked at again), but from the audit's lower thresholds, and confirmed at blurring's
            search = {name: value * PANORAMA_THRESHOLD_SHARE for name, value in self.settings.thresholds.items()}
            seen = sphere_detect.detect_sphere(rgb, geo, self.blurrer.detectors, search, self.settings.views)
            seen = seen.above(search)
            found = sphere_detect.confirm(rgb, geo, seen, self.blurrer.detectors, self.sure)
            entry.unconfirmed += len(seen) - len(found)
        else:
            found = self.blurrer.detect(rgb)
        found = found[_one_per_object(found, rgb.shape[1] if geo is not None and geo.wraps else 0)]
        wraps = geo is not None and geo.wraps
        for index, record in enumerate(found.to_records()):
            inside, around, share = detail(rgb, found.xyxy[index], wraps)
            if is_blurred(inside, around, share):
                entry.blurred += 1
                continue
            if geo is None and not self._confirmed(rgb, found[[index]]):
                entry.unconfirmed += 1
                continue
            finding = Finding(entry.file, where, str(record["class"]), float(record["score"]),
                              list(record["box"]), round(inside, 1), round(around, 1),
                              record.get("sphere"))  # type: ignore[arg-type]
            small = min(found.widths[index], found.heights[index]) < self.min_size
            (entry.small if small else entry.findings).append(finding)

    def _confirmed(self, rgb: np.ndarray, one: Detections) -> bool:
        """A second look: a crop centred on the find, at twice the size or with the find at least
        ``CONFIRM_HEIGHT`` tall, searched at the
        blurring threshold; confirmed when it finds its class, unblurred, overlapping the find (IoU 0.3)."""
        name = one.class_names[0]
        x1, y1, x2, y2 = (float(v) for v in one.xyxy[0])
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        cx0, cy0 = max(0, int(x1 - 1.5 * w)), max(0, int(y1 - 1.5 * h))
        cx1, cy1 = min(rgb.shape[1], int(x2 + 1.5 * w) + 1), min(rgb.shape[0], int(y2 + 1.5 * h) + 1)
        crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
        scale = min(max(2.0, CONFIRM_HEIGHT / h), CONFIRM_LONGEST / max(crop.shape[:2]))
        if scale != 1.0:
            crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                              interpolation=cv2.INTER_CUBIC)
        detectors = [d for d in self.blurrer.detectors if d.class_name == name]
        again = detect_planar(crop, detectors, {name: self.sure[name]})
        again = again.of(name).above({name: self.sure[name]}).scaled(1 / scale).shifted(cx0, cy0)
        if not len(again):
            return False
        inter = box_overlap(one.xyxy, again.xyxy)[0]
        union = w * h + again.widths * again.heights - inter
        # confirmed by a find that overlaps it and is not blurred itself (a blurred object next to detail
        # can look like a face to the first look; the second then finds the blurred object)
        return any(not is_blurred(*detail(rgb, box)) for box, i, u in zip(again.xyxy, inter, union,
                                                                                  strict=True) if i >= 0.3 * u)


def _one_per_object(found: Detections, period: int = 0) -> np.ndarray:
    """Indexes of the finds to list: of two finds of a class whose centres each lie in the other's box
    grown to the larger's size (one object seen at two sizes, which the pipeline keeps to blur both), the
    higher-scored. ``period``: the width across which x wraps (a full panorama), else 0."""
    cx, cy = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2, (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
    keep: list[int] = []
    for i in np.argsort(-found.scores, kind="stable"):
        twin = False
        for j in keep:
            dx = abs(cx[i] - cx[j])
            if period:
                dx = min(dx % period, period - dx % period)
            same_class = found.class_ids[i] == found.class_ids[j]
            if same_class and dx < max(found.widths[i], found.widths[j]) / 2 and abs(cy[i] - cy[j]) < max(
                    found.heights[i], found.heights[j]) / 2:
                twin = True
                break
        if not twin:
            keep.append(int(i))
    return np.array(sorted(keep), dtype=np.int64)



def image_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, name relative to ``root``) of every image under ``root``, hidden files and folders skipped."""
    if root.is_file():
        yield root, root.name
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                path = Path(folder) / name
                yield path, path.relative_to(root).as_posix()


def run_audit(root: Path, auditor: Auditor, on_file: Callable[[FileAudit], None] | None = None) -> Audit:
    """Audit every image under ``root`` in this process."""
    start = time.perf_counter()
    result = Audit(str(root))
    for path, label in image_files(root):
        entry = auditor.audit_file(path, label)
        result.files.append(entry)
        if on_file:
            on_file(entry)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


_WORKER: Auditor | None = None


def _start_worker(settings: Settings, share: float, min_size: float) -> None:
    global _WORKER
    _WORKER = Auditor(settings, share, min_size)


def _audit_in_worker(job: tuple[Path, str]) -> FileAudit:
    assert _WORKER is not None
    return _WORKER.audit_file(*job)


def run_audit_parallel(root: Path, settings: Settings, share: float, min_size: float, jobs: int,
                       on_file: Callable[[FileAudit], None] | None = None) -> Audit:
    """``run_audit`` in ``jobs`` worker processes (started fresh, each loading the models once), each with
    its share of the cores for onnxruntime; results come back in the files' order."""
    start = time.perf_counter()
    result = Audit(str(root))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(replace(settings, threads=threads), share, min_size)) as pool:
        for entry in pool.map(_audit_in_worker, image_files(root)):
            result.files.append(entry)
            if on_file:
                on_file(entry)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


# -- what it tells --------------------------------------------------------------------------------
def as_json(result: Audit, thresholds: dict[str, float], min_size: float) -> dict[str, Any]:
    return {
        "tool": "pii-blur audit",
        "version": __version__,
        "dir": result.root,
        "clean": result.clean,
        "thresholds": thresholds,
        "blurred_when": {"detail_below": BLURRED_ABSOLUTE, "or_share_of_surroundings_below": BLURRED_RELATIVE,
                         "measured_at_box_height": DETAIL_SIZE},
        "coordinates": "boxes are x1, y1, x2, y2 in pixels of the upright picture, or of the embedded image",
        "summary": {
            "images": len(result.files),
            "flagged": sum(1 for f in result.files if f.status == "flagged"),
            "failed": len(result.failed),
            "findings": len(result.findings),
            "ignored_blurred": sum(f.blurred for f in result.files),
            "ignored_unconfirmed": sum(f.unconfirmed for f in result.files),
            "small_not_counted": sum(len(f.small) for f in result.files),
            "seconds": result.seconds,
        },
        "min_size": min_size,
        "findings": [asdict(f) for f in result.findings],
        "small": [asdict(f) for entry in result.files for f in entry.small],
        "files": [{k: v for k, v in asdict(f).items() if k not in ("findings", "small")} for f in result.files],
    }


def contact_sheet(result: Audit, root: Path, target: Path, cell: int = 160, limit: int = 200) -> bool:
    """A PNG grid of what is left, each crop with context and a red outline; False (nothing written) when
    nothing is left."""
    findings = result.findings[:limit]
    if not findings:
        return False
    tiles: list[np.ndarray] = []
    cache: dict[tuple[str, str], np.ndarray] = {}
    for finding in findings:
        key = (finding.file, finding.where)
        if key not in cache:
            cache.clear()
            cache[key] = _picture(root, finding)
        rgb = cache[key]
        x1, y1, x2, y2 = finding.box
        pad = max(x2 - x1, y2 - y1) * 0.6 + 8
        cx0, cy0 = int(x1 - pad), int(max(0, y1 - pad))
        cx1, cy1 = int(x2 + pad), int(min(rgb.shape[0], y2 + pad))
        if finding.sphere is None:
            cx0, cx1 = max(0, cx0), min(rgb.shape[1], cx1)
        cols = np.mod(np.arange(cx0, max(cx1, cx0 + 1)), rgb.shape[1])
        crop = np.ascontiguousarray(rgb[cy0:max(cy1, cy0 + 1)][:, cols])
        cv2.rectangle(crop, (int(x1 - cx0), int(y1 - cy0)), (int(x2 - cx0), int(y2 - cy0)), (255, 0, 0), 1)
        scale = (cell - 30) / max(crop.shape[:2])
        crop = cv2.resize(crop, None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
        tile = np.full((cell, cell, 3), 255, np.uint8)
        tile[: crop.shape[0], : crop.shape[1]] = crop[: cell - 30, :cell]
        lines = [f"{finding.cls} {finding.score:.2f} {finding.file[-18:]}",
                 finding.where[:26] if finding.where != "picture" else finding.place()[:26]]
        for i, line in enumerate(lines):
            cv2.putText(tile, line, (2, cell - 18 + 12 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1,
                        cv2.LINE_AA)
        tiles.append(tile)
    sheet = grid(tiles, cell, 8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode the contact sheet {target}")
    write_atomic(target, png.tobytes())
    return True


def _picture(root: Path, finding: Finding) -> np.ndarray:
    """The upright picture (or embedded image) a finding was made in."""
    path = root / finding.file if root.is_dir() else root
    image = read_image_bytes(read_bytes(path), path)
    if finding.where in ("picture", FLAT):
        return image.upright_rgb()
    if finding.where == STORED:
        return as_stored(image.upright_rgb(), image.orientation)
    if finding.where.startswith("frame "):
        frame = image.later[int(finding.where.split()[1]) - 2]
        return frame.upright_rgb(later_frames_orientation(image))
    for item in embedded_images(image):
        picture = decode(item)
        if item.where == finding.where and picture is not None:
            return embedded_upright(picture, image.orientation)
    raise ImageError(f"{finding.where} of {finding.file} is gone")


def _parser(add_detection_options: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pii-blur audit",
        description="Check finished output before publishing: search every image in DIR, and every image "
        "its files carry (thumbnails, previews, XMP images, MPO frames), at a lower threshold than blurring "
        "uses, ignore what is already blurred, and list what still looks like a face or a plate. "
        "Give the blurring run's options (thresholds, classes, projection): the audit goes below them.",
        epilog="Exit status: 0 nothing left, 1 something left or a file could not be checked, 2 usage.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="the output folder (or one image) to check")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the findings as JSON")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG",
                        help="write crops of what is left as one PNG (not written when nothing is left)")
    parser.add_argument("--share", type=float, default=AUDIT_SHARE, metavar="F",
                        help="search down to this share of each blurring threshold (default: %(default).2f)")
    parser.add_argument("--min-size", type=float, default=MIN_SIZE, metavar="PX",
                        help="finds smaller than this (pixels, shorter side) are listed in the report but do not "
                        "count (default: %(default)s; 0 counts everything)")
    parser.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                        help="worker processes (default: one per core, at most one per image)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    add_detection_options(parser)
    return parser


def main(argv: Sequence[str], add_detection_options: Callable[[argparse.ArgumentParser], None],
         make_settings: Callable[[argparse.Namespace], Settings]) -> int:
    parser = _parser(add_detection_options)
    args = parser.parse_args(list(argv))
    if not args.dir.exists():
        parser.error(f"{args.dir} does not exist")
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")
    for given in (args.report, args.contact_sheet):
        inside = given is not None and given.resolve().is_relative_to(args.dir.resolve())
        if given is not None and (given.resolve() == args.dir.resolve() or (
                inside and given.suffix.lower() in IMAGE_EXTENSIONS)):
            parser.error(f"{given}: an image written inside DIR would be audited next time; choose another place")
    if args.contact_sheet is not None and args.contact_sheet.resolve().is_relative_to(args.dir.resolve()):
        # its crops are what may still be a face or a plate: whatever its name, never among what is published
        parser.error(f"{args.contact_sheet}: the contact sheet shows what may still be faces and plates; write it "
                     "outside DIR, which is to be published")
    settings = make_settings(args)
    thresholds = audit_settings(settings, args.share).thresholds
    files = sum(1 for _ in image_files(args.dir))
    jobs = min(args.jobs or (os.cpu_count() or 1), max(files, 1))

    def on_file(entry: FileAudit) -> None:
        if entry.status == "failed":
            print(f"error: {entry.file}: {entry.reason}", file=sys.stderr)
        if not args.quiet:
            for f in entry.findings:
                print(f"left: {f.file}: {f.where}: {f.cls} {f.score:.2f} at {f.place()}")

    if jobs > 1:
        result = run_audit_parallel(args.dir, settings, args.share, args.min_size, jobs, on_file)
    else:
        result = run_audit(args.dir, Auditor(settings, args.share, args.min_size), on_file)
    told = as_json(result, thresholds, args.min_size)
    if args.report:
        write_atomic(args.report, (json.dumps(told, indent=2) + "\n").encode())
    if args.contact_sheet:
        contact_sheet(result, args.dir, args.contact_sheet)
    summary = told["summary"]
    print(f"audit: {summary['images']} images, {summary['findings']} finds left in {summary['flagged']} "
          f"images, {summary['failed']} could not be checked; ignored {summary['ignored_blurred']} already "
          f"blurred, {summary['ignored_unconfirmed']} a second look did not confirm and "
          f"{summary['small_not_counted']} under {args.min_size:g} px "
          f"({summary['seconds']:.1f} s)", file=sys.stderr)
    return EXIT_CLEAN if result.clean else EXIT_LEFT


__all__ = ["CLASSES", "Audit", "Auditor", "Finding", "detail", "is_blurred", "main", "run_audit",
           "run_audit_parallel"]
