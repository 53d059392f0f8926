"""Plate recall on real labelled photos, flat and projected into panoramas, and plate finds in real panoramas.

    python benchmarks/plates.py [--data ../shared/data] [--plate-model FILE.onnx] [--precision int8|fp32]
                                [--sets ro,openimages,us,eu,pano,pano360,faces] [--quick] [--out DIR]

Flat sets (plates_ro_dashcam `valid` only, plates_openimages, plates_openalpr_us, plates_openalpr_eu): each
image goes through the library's own detection and blur mask (Blurrer.detect and Blurrer.protected, plates
only). A labelled plate counts as
  - found by detection when a plate detection overlaps it with IoU >= 0.5, or (more leniently, as
    piiblur.evaluate matches) by 30% of the smaller of the two boxes: the shipped net draws plate boxes
    about twice as tall as the ro_dashcam labels, which alone can keep IoU under 0.5, and
  - protected when the blur mask covers at least 80% of its box (half a covered plate is a leak),
per plate height in pixels. A detection is false when it overlaps no label by 30% of the smaller of the two
boxes (as in piiblur.evaluate). Only plates_openimages labels every plate: on the openalpr sets only one
plate per image is labelled and on plates_ro_dashcam parked and side cars are often unlabelled, so their
false detections are upper bounds. "Blur off labels" is the share of image pixels blurred outside every
labelled plate grown by 0.6 of its height + 3 px each side.

Panoramas (pano): every plates_ro_dashcam `valid` photo (1280x720) is put on the sphere as a pinhole view of
90 degrees horizontal field of view (focal 640 px) and drawn into a 4000x2000 equirectangular panorama
(focal 636.6 px at the equator, so the photo keeps its resolution at its centre; 8000x4000 would only
upsample it and take four times as long) over a real landscape (pano360/pannellum_examplepano.jpg, nothing
to blur). Three photos share a panorama, 120 degrees apart in yaw, all at one pitch: 0, -15, -30 or -45
(the camera looking down: plates seen from above, near the nadir at the photo's bottom). The first photo of
each panorama faces the seam (yaw 180, give or take 0-25 degrees), so a third of the photos are cut by it.
Each photo gets ``--poses`` of the four pitches (default 1: 36 panoramas, about 10 s each on 2 busy cores;
pitches cycled so that every pitch gets the same share of photos). The
panorama goes through the real sphere path (views, confirmation, blur mask on the sphere). A plate's truth
is its footprint: the panorama pixels whose direction falls inside its labelled box; it is protected when
the plate blur covers 80% of the footprint; for detection, a detection's outline is taken back into the
photo's frame (its bounding box there) and matched to the box as in a flat photo. Rows per pitch, per
size (box height in the photo) and for plates whose footprint the seam cuts.

pano360: the real panoramas (no labels) through the tool's own path (projection auto, plates only): every
plate detection is listed with its score and place, and a crop (before | after) is written under --out so
a person can see whether it is a plate or a street sign (the issue says most are signs).

faces: faces_dlib through the face detector: recall by detection (overlap >= 30% of the smaller box; dlib
boxes are tight) and by blur cover >= 80%, and whether every detected face is itself covered >= 80% by the
blur (checked in the pano and pano360 runs too with --faces, at about four times the time).

Nothing here is training data: plates_ro_dashcam `train` is never read; a plate model trained on it is
measured on `valid`, which stays held out. The images are under --data (../shared/data by default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from piiblur import sphere
from piiblur.detections import Detections, box_overlap
from piiblur.detectors.base import model_path
from piiblur.formats import read_image
from piiblur.pipeline import Blurrer, Settings

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FLAT_SETS = {"ro": "plates_ro_dashcam", "openimages": "plates_openimages", "us": "plates_openalpr_us",
             "eu": "plates_openalpr_eu"}
ALL_SETS = (*FLAT_SETS, "pano", "pano360", "faces")
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("<8", 0, 8), ("8-16", 8, 16), ("16-32", 16, 32), ("32-64", 32, 64), ("64+", 64, math.inf),
)
COVER = 0.8  # share of a plate's box the blur must cover
HIT_IOU = 0.5  # IoU of a detection with a label to count as found by detection
MATCH_SHARE = 0.3  # a detection overlapping no label by this share of the smaller box is false
GROW = (0.6, 3.0)  # "around" a label: grown by 0.6 x its height + 3 px each side
PANO_WIDTH = 4000
PHOTO_FOV = 90.0
PITCHES = (0.0, -15.0, -30.0, -45.0)
PER_PANO = 3
SEAM_OFFSETS = (0.0, -10.0, 10.0, -25.0, 25.0)  # yaw of the first photo of each panorama, off the seam
BACKGROUND = "pano360/images/pannellum_examplepano.jpg"


def size_bin(height: float) -> str:
    return next(name for name, lo, hi in SIZE_BINS if lo <= height < hi)


# -- tallies ------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """Counts of one set: per row key (a size bin, a pitch ...) labelled, found and protected plates."""

    total: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # a detection with IoU >= HIT_IOU
    matched: dict[str, int] = field(default_factory=dict)  # a detection overlapping by MATCH_SHARE
    covered: dict[str, int] = field(default_factory=dict)
    covered70: int = 0
    images: int = 0
    detections: int = 0
    false: int = 0
    off_labels: float = 0.0  # sum over images of the share of pixels blurred off the labels
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    def add(self, keys: list[str], found: bool, matched: bool, coverage: float) -> None:
        for key in keys:
            self.total[key] = self.total.get(key, 0) + 1
            self.found[key] = self.found.get(key, 0) + int(found)
            self.matched[key] = self.matched.get(key, 0) + int(matched)
            self.covered[key] = self.covered.get(key, 0) + int(coverage >= COVER)
        self.covered70 += int(coverage >= 0.7)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = box_overlap(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def unmatched(dets: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Which detections overlap no label by MATCH_SHARE of the smaller of the two boxes."""
    if not len(truth):
        return np.ones(len(dets), bool)
    inter = box_overlap(dets, truth)
    area_d = ((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1]))[:, None]
    area_t = ((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]))[None, :]
    return ~(inter / np.maximum(np.minimum(area_d, area_t), 1e-6) >= MATCH_SHARE).any(axis=1)


def grown(boxes: np.ndarray) -> np.ndarray:
    m = GROW[0] * (boxes[:, 3:4] - boxes[:, 1:2]) + GROW[1]
    return boxes + np.concatenate([-m, -m, m, m], axis=1)


def box_coverage(mask: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    window = mask[max(y1, 0) : max(y2, y1 + 1), max(x1, 0) : max(x2, x1 + 1)]
    return float(window.mean()) if window.size else 0.0


# -- flat sets ----------------------------------------------------------------------------------------
def in_half(name: str, half: str) -> bool:
    """A fixed half of a set by file name: ``dev`` may choose a setting (a mixing weight), ``test`` measures
    it; ``all`` is the whole set."""
    return half == "all" or (zlib.crc32(name.encode()) % 2 == 0) == (half == "dev")


def flat_labels(folder: Path, quick: bool, half: str = "all") -> dict[str, np.ndarray]:
    """Plate boxes per image; plates_ro_dashcam: the `valid` split only."""
    labels = json.loads((folder / "labels.json").read_text())
    out: dict[str, np.ndarray] = {}
    for name, boxes in sorted(labels.items()):
        if folder.name == "plates_ro_dashcam" and not any(b.get("split") == "valid" for b in boxes):
            continue
        if not in_half(name, half):
            continue
        out[name] = np.array([b["box"] for b in boxes if b["class"] == "plate"], np.float32).reshape(-1, 4)
    if quick:
        out = dict(list(out.items())[::4])
    return out


def run_flat(blurrer: Blurrer, folder: Path, quick: bool, half: str = "all") -> Tally:
    tally = Tally()
    start = time.perf_counter()
    for name, truth in flat_labels(folder, quick, half).items():
        rgb = read_image(folder / "images" / name).upright_rgb()
        found = blurrer.detect(rgb).of("plate")
        mask = blurrer.protected(found, rgb.shape[:2], None)
        score_labels(tally, name, truth, found.xyxy, [box_coverage(mask, b) for b in truth])
        tally.detections += len(found)
        tally.false += int(unmatched(found.xyxy, truth).sum())
        near = np.zeros(rgb.shape[:2], bool)
        for box in grown(truth):
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            near[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
        tally.off_labels += float(np.count_nonzero(mask & ~near)) / mask.size
        tally.images += 1
    tally.seconds = time.perf_counter() - start
    return tally


def score_labels(tally: Tally, name: str, truth: np.ndarray, dets: np.ndarray, coverage: list[float],
                 extra_keys: tuple[str, ...] = ()) -> None:
    """Score the labels of one photo against detections in the same frame (the photo's pixels)."""
    hits = (iou(truth, dets) >= HIT_IOU).any(axis=1) if len(dets) and len(truth) else np.zeros(len(truth), bool)
    matched = ~unmatched(truth, dets) if len(dets) else np.zeros(len(truth), bool)
    for box, hit, match, cov in zip(truth, hits, matched, coverage, strict=True):
        size = size_bin(float(box[3] - box[1]))
        tally.add([size, "all", *(f"{k} {size}" for k in extra_keys), *extra_keys], bool(hit), bool(match), cov)
        if cov < COVER:
            tally.misses.append(f"{name} box {[round(float(v)) for v in box]} det {'yes' if match else 'no'} "
                                f"covered {cov:.2f} {' '.join(extra_keys)}")


# -- panoramas made of photos -------------------------------------------------------------------------
@dataclass
class Footprint:
    """Panorama pixels of one labelled plate: a window (rows x cols, cols already modulo the width)."""

    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray  # in the labelled box
    around: np.ndarray  # in the box grown by GROW

    def coverage(self, mask: np.ndarray) -> float:
        if not self.inside.any():
            return 0.0
        return float(mask[np.ix_(self.rows, self.cols)][self.inside].mean())


@dataclass
class Photo:
    name: str
    view: sphere.View
    truth: np.ndarray  # (N, 4) boxes in the photo's pixels
    footprints: list[Footprint]


def photo_window(view: sphere.View, geo: sphere.Equirect) -> tuple[np.ndarray, np.ndarray]:
    """Panorama columns (unwrapped, may run past either edge) and rows the photo can reach."""
    n = 64
    t = np.linspace(0, 1, n)
    w, h = view.width, view.height
    u = np.concatenate([w * t, np.full(n, w), w - w * t, np.zeros(n)])
    v = np.concatenate([np.zeros(n), h * t, np.full(n, h), h - h * t])
    x, y = geo.to_pixels(*sphere.angles(view.rays(u, v)))
    centre = float(geo.to_pixels(np.array(view.yaw), np.array(0.0))[0])
    x = centre + (x - centre + geo.width / 2) % geo.width - geo.width / 2  # continuous across the seam
    rows = np.arange(max(0, math.floor(y.min()) - 1), min(geo.height, math.ceil(y.max()) + 2))
    cols = np.arange(math.floor(x.min()) - 1, math.ceil(x.max()) + 2)
    return cols, rows


def draw_photo(pano: np.ndarray, geo: sphere.Equirect, rgb: np.ndarray, name: str, truth: np.ndarray,
               yaw: float, pitch: float) -> Photo:
    """Draw a photo into the panorama (in place) as a pinhole view at (yaw, pitch); its plates' footprints."""
    h, w = rgb.shape[:2]
    focal = w / 2 / math.tan(math.radians(PHOTO_FOV) / 2)
    view = sphere.View(yaw, pitch, w, h, focal)
    cols, rows = photo_window(view, geo)
    cidx = np.mod(cols, geo.width)
    yaws, pitches = geo.to_angles(cols[None, :] + 0.5, rows[:, None] + 0.5)
    u, v, front = view.project(sphere.directions(yaws, pitches))
    u, v = np.where(front, u, -1e4), np.where(front, v, -1e4)
    on = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    drawn = cv2.remap(rgb, (u - 0.5).astype(np.float32), (v - 0.5).astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    window = pano[np.ix_(rows, cidx)]
    pano[np.ix_(rows, cidx)] = np.where(on[..., None], drawn, window)
    prints = []
    for box, big in zip(truth, grown(truth), strict=True):
        inside = on & (u >= box[0]) & (u <= box[2]) & (v >= box[1]) & (v <= box[3])
        around = on & (u >= big[0]) & (u <= big[2]) & (v >= big[1]) & (v <= big[3])
        r, c = np.flatnonzero(around.any(axis=1)), np.flatnonzero(around.any(axis=0))
        if not r.size:
            r = c = np.arange(1)
        rs, cs = slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)
        prints.append(Footprint(rows[rs], cidx[cs], inside[rs, cs], around[rs, cs]))
    return Photo(name, view, truth, prints)


def crosses_seam(fp: Footprint, width: int) -> bool:
    cols = fp.cols[fp.inside.any(axis=0)]
    return bool(cols.size) and 0 in cols and width - 1 in cols


def in_photo(dets: Detections, geo: sphere.Equirect, photo: Photo) -> tuple[np.ndarray, np.ndarray]:
    """Detections' outlines taken into the photo's frame: boxes (N, 4) there, and which lie on the photo."""
    boxes = np.zeros((len(dets), 4), np.float32)
    on = np.zeros(len(dets), bool)
    assert dets.outlines is not None
    for i, outline in enumerate(dets.outlines):
        yaw, pitch = geo.to_angles(outline[:, 0], outline[:, 1])
        u, v, front = photo.view.project(sphere.directions(yaw, pitch))
        if not front.all():
            continue
        boxes[i] = [u.min(), v.min(), u.max(), v.max()]
        cu, cv_ = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
        on[i] = 0 <= cu < photo.view.width and 0 <= cv_ < photo.view.height
    return boxes, on


def pano_poses(count: int, poses: int, pitches: tuple[float, ...] = PITCHES
               ) -> Iterator[tuple[float, list[tuple[int, float]]]]:
    """(pitch, [(photo index, yaw)]) for every panorama: each photo at ``poses`` pitches, pitches cycled."""
    placements = [(i, pitches[(i + k * max(1, len(pitches) // poses)) % len(pitches)])
                  for k in range(poses) for i in range(count)]
    by_pitch: dict[float, list[int]] = {}
    for i, pitch in placements:
        by_pitch.setdefault(pitch, []).append(i)
    n = 0
    for pitch in pitches:
        photos = by_pitch.get(pitch, [])
        for start in range(0, len(photos), PER_PANO):
            offset = SEAM_OFFSETS[n % len(SEAM_OFFSETS)]
            n += 1
            yaws = [((offset + j * 360 / PER_PANO) % 360) - 180 for j in range(PER_PANO)]
            yield pitch, list(zip(photos[start : start + PER_PANO], yaws, strict=False))


def run_panoramas(blurrer: Blurrer, data: Path, poses: int, quick: bool, faces: FaceCheck | None,
                  half: str = "all", pitches: tuple[float, ...] = PITCHES) -> Tally:
    folder = data / "plates_ro_dashcam"
    labels = flat_labels(folder, quick, half)
    names = list(labels)
    background = cv2.resize(read_image(data / BACKGROUND).upright_rgb(), (PANO_WIDTH, PANO_WIDTH // 2),
                            interpolation=cv2.INTER_AREA)
    geo = sphere.Equirect(PANO_WIDTH, PANO_WIDTH // 2, PANO_WIDTH, PANO_WIDTH // 2)
    tally = Tally()
    start = time.perf_counter()
    for pitch, placed in pano_poses(len(names), poses, pitches):
        pano = background.copy()
        photos = [draw_photo(pano, geo, read_image(folder / "images" / names[i]).upright_rgb(), names[i],
                             labels[names[i]], yaw, pitch) for i, yaw in placed]
        found = blurrer.detect(pano, geo)
        plates = found.of("plate")
        mask = blurrer.protected(plates, (geo.height, geo.width), geo)
        score_panorama(tally, geo, photos, plates, mask, pitch)
        if faces is not None:
            faces.check_detected(blurrer, found.of("face"), geo)
        tally.images += 1
    tally.seconds = time.perf_counter() - start
    return tally


def score_panorama(tally: Tally, geo: sphere.Equirect, photos: list[Photo], plates: Detections,
                   mask: np.ndarray, pitch: float) -> None:
    claimed = np.zeros(len(plates), bool)
    near = np.zeros(mask.shape, bool)
    for photo in photos:
        boxes, on = in_photo(plates, geo, photo) if len(plates) else (np.zeros((0, 4)), np.zeros(0, bool))
        claimed |= on
        keys = [f"pitch {pitch:g}"]
        for box, fp in zip(photo.truth, photo.footprints, strict=True):
            near[np.ix_(fp.rows, fp.cols)] |= fp.around
            seam = ["seam"] if crosses_seam(fp, geo.width) else []
            score_labels(tally, f"{photo.name} yaw {photo.view.yaw:g}", box[None], boxes[on],
                         [fp.coverage(mask)], (*keys, *seam))
        tally.false += int(unmatched(boxes[on], photo.truth).sum())
    tally.detections += len(plates)
    tally.false += int((~claimed).sum())  # on the landscape around the photos
    tally.off_labels += float(np.count_nonzero(mask & ~near)) / mask.size


# -- faces -----------------------------------------------------------------------------------------------
@dataclass
class FaceCheck:
    """Faces: labelled faces found and protected (faces_dlib), and detected faces covered by their blur."""

    labelled: int = 0
    found: int = 0
    covered: int = 0
    detected: int = 0
    detected_covered: int = 0
    worst: float = 1.0
    images: int = 0

    def check_detected(self, blurrer: Blurrer, faces: Detections, geo: sphere.Equirect | None,
                       shape: tuple[int, int] = (0, 0)) -> None:
        """Every detected face's own box (its outline on a panorama) covered COVER by the face blur."""
        if not len(faces):
            return
        size = (geo.height, geo.width) if geo is not None else shape
        mask = blurrer.protected(faces, size, geo)
        for i in range(len(faces)):
            share = outline_coverage(mask, faces, i, geo)
            self.detected += 1
            self.detected_covered += int(share >= COVER)
            self.worst = min(self.worst, share)


def outline_coverage(mask: np.ndarray, dets: Detections, i: int, geo: sphere.Equirect | None) -> float:
    if geo is None or dets.outlines is None:
        return box_coverage(mask, dets.xyxy[i])
    shape = np.zeros(mask.shape, np.uint8)
    outline = dets.outlines[i]
    for shift in (-geo.width, 0, geo.width):
        cv2.fillPoly(shape, [np.round(outline + np.array([shift, 0])).astype(np.int32)], 1)
    inside = shape.astype(bool)
    return float(mask[inside].mean()) if inside.any() else 1.0


def run_faces(blurrer: Blurrer, folder: Path) -> FaceCheck:
    check = FaceCheck()
    labels = json.loads((folder / "labels.json").read_text())
    for name, boxes in sorted(labels.items()):
        rgb = read_image(folder / "images" / name).upright_rgb()
        truth = np.array([b["box"] for b in boxes if b["class"] == "face"], np.float32).reshape(-1, 4)
        faces = blurrer.detect(rgb).of("face")
        mask = blurrer.protected(faces, rgb.shape[:2], None)
        matched = ~unmatched(truth, faces.xyxy) if len(faces) else np.zeros(len(truth), bool)
        check.labelled += len(truth)
        check.found += int(matched.sum())
        check.covered += sum(box_coverage(mask, b) >= COVER for b in truth)
        check.check_detected(blurrer, faces, None, rgb.shape[:2])
        check.images += 1
    return check


# -- pano360: what the plate detector finds in real panoramas ------------------------------------------
def run_pano360(blurrer: Blurrer, folder: Path, out: Path, faces: FaceCheck | None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        image = read_image(path)
        rgb = image.upright_rgb()
        geo = blurrer.geometry(image)
        start = time.perf_counter()
        found = blurrer.detect(rgb, geo)
        plates = found.of("plate")
        seconds = time.perf_counter() - start
        mask = blurrer.protected(plates, rgb.shape[:2], geo)
        blurred = blurrer.blur(rgb, plates, geo) if len(plates) else rgb
        kind = "equirectangular" if geo is not None else "flat"
        lines.append(f"{path.name}: {image.size[0]}x{image.size[1]} {kind}, {len(plates)} plate detections, "
                     f"{100 * mask.mean():.3f}% of pixels blurred as plates, {seconds:.1f} s")
        for i, record in enumerate(plates.to_records()):
            crop_name = f"{path.stem}_plate{i:02d}.png"
            cv2.imwrite(str(out / crop_name), cv2.cvtColor(crop_pair(rgb, blurred, plates, i, geo),
                                                           cv2.COLOR_RGB2BGR))
            where = record.get("sphere")
            place = (f" yaw {where['yaw']:7.1f} pitch {where['pitch']:6.1f} {where['width_deg']:.1f}x"
                     f"{where['height_deg']:.1f} deg" if isinstance(where, dict) else "")
            lines.append(f"    score {record['score']:.2f} box {record['box']}{place} -> {out / crop_name}")
        if faces is not None:
            faces.check_detected(blurrer, found.of("face"), geo, rgb.shape[:2])
    return lines


def crop_pair(rgb: np.ndarray, blurred: np.ndarray, dets: Detections, i: int, geo: sphere.Equirect | None,
              cell: int = 200) -> np.ndarray:
    """Before | after of one detection with context, each ``cell`` px square."""
    if geo is not None and dets.places is not None:
        yaw, pitch, ang_w, ang_h = (float(v) for v in dets.places[i])
        fov = float(np.clip(4 * max(ang_w, ang_h), 3, 120))
        view = sphere.view_of(yaw, pitch, fov, cell / (2 * math.tan(math.radians(fov) / 2)))
        pair = [sphere.render(img, geo, view) for img in (rgb, blurred)]
    else:
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        pad = 1.5 * max(x2 - x1, y2 - y1)
        h, w = rgb.shape[:2]
        y0, y1_, x0, x1_ = max(0, int(y1 - pad)), min(h, int(y2 + pad)), max(0, int(x1 - pad)), min(w, int(x2 + pad))
        pair = [img[y0:y1_, x0:x1_] for img in (rgb, blurred)]
    pair = [cv2.resize(np.ascontiguousarray(p), (cell, cell), interpolation=cv2.INTER_AREA) for p in pair]
    return np.hstack(pair)


# -- output ---------------------------------------------------------------------------------------------
def cell(tally: Tally, key: str) -> str:
    total = tally.total.get(key, 0)
    if not total:
        return "-"
    return (f"{100 * tally.found[key] / total:.1f} / {100 * tally.matched[key] / total:.1f} / "
            f"{100 * tally.covered[key] / total:.1f} (n={total})")


def table(title: str, tally: Tally, rows: list[str], note: str = "") -> str:
    lines = [f"### {title}", "", f"{tally.images} images, {tally.seconds:.0f} s "
             f"({tally.seconds / max(tally.images, 1):.2f} s/image). Cells: recall (%) by detection with IoU >= "
             f"{HIT_IOU} / by detection overlapping {MATCH_SHARE:.0%} of the smaller box / by blur covering >= "
             f"{COVER:.0%} of the box."]
    if note:
        lines.append(note)
    lines += ["", "| rows | " + " | ".join(b[0] for b in SIZE_BINS) + " | all |",
              "|---|" + "---|" * (len(SIZE_BINS) + 1)]
    for row in rows:
        prefix = "" if row == "all" else f"{row} "
        cells = [cell(tally, f"{prefix}{b[0]}" if prefix else b[0]) for b in SIZE_BINS]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {cell(tally, row)} |")
    n = max(tally.total.get("all", 0), 1)
    lines += ["", f"blur >= 70% (piiblur.evaluate's rule): {100 * tally.covered70 / n:.1f}%; "
              f"plate detections {tally.detections / max(tally.images, 1):.2f} per image, matching no label "
              f"{tally.false / max(tally.images, 1):.2f} per image; blur off labels "
              f"{100 * tally.off_labels / max(tally.images, 1):.3f}% of pixels", ""]
    return "\n".join(lines)


FALSE_NOTES = {
    "plates_ro_dashcam": "Labels are incomplete (parked and side cars): false detections are an upper bound.",
    "plates_openalpr_us": "One plate labelled per image: false detections are an upper bound.",
    "plates_openalpr_eu": "One plate labelled per image: false detections are an upper bound.",
    "plates_openimages": "Every plate labelled (images stretched to 416x416).",
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--plate-model", type=Path, help="ONNX file of the plate net (default: the shipped one)")
    parser.add_argument("--precision", default="int8", choices=["int8", "fp32"],
                        help="of the shipped models (a --plate-model file is used as it is)")
    parser.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated, of {', '.join(ALL_SETS)}")
    parser.add_argument("--half", default="all", choices=["all", "dev", "test"],
                        help="flat sets and the photos of pano: a fixed half by file name (dev: for choosing a "
                             "setting; test: measuring it)")
    parser.add_argument("--quick", action="store_true", help="a quarter of each flat set and of the photos, 1 pose")
    parser.add_argument("--poses", type=int, default=1, choices=range(1, 5),
                        help="pitches per photo in the panoramas (1-4, default 1)")
    parser.add_argument("--faces", action="store_true", help="detect faces in pano and pano360 too (slower)")
    parser.add_argument("--misses", action="store_true", help="list every plate the blur leaves uncovered")
    parser.add_argument("--threshold", type=float, default=None,
                        help="the plate threshold (default: the shipped one, classes.CLASS_TABLE)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--pitches", default=",".join(f"{p:g}" for p in PITCHES),
                        help="pitches the photos are placed at in the panoramas (default %(default)s; -70: plates "
                             "40-100 degrees down, past the nadir, as a camera on a pole or a backpack sees a bumper)")
    parser.add_argument("--views", default="standard", help="the set of views of the sphere (pii-blur --views)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/pii-blur-plates"), help="pano360 crops go here")
    args = parser.parse_args()
    unknown = set(args.sets.split(",")) - set(ALL_SETS)
    if unknown:
        parser.error(f"unknown sets: {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    args = parse()
    if not args.data.is_dir():
        print(f"no evaluation data under {args.data}: nothing to measure")
        return 0
    sets = args.sets.split(",")
    model = str(args.plate_model) if args.plate_model else model_path(
        "plate_yolov8n_street_int8.onnx" if args.precision == "int8" else "plate_yolov8n_street.onnx")
    base = Settings(classes=("plate",), precision=args.precision, threads=args.threads, views=args.views,
                    model_files={"plate": model} if args.plate_model else {},
                    thresholds={} if args.threshold is None else {"plate": args.threshold})
    print(f"plate model {model} at threshold {base.thresholds['plate']}; face model at {args.precision}; "
          f"data {args.data.resolve()}")
    print("Evaluation data only, nothing here is training data: plates_ro_dashcam `valid` (its `train` split is "
          "never read), plates_openimages, plates_openalpr_us/eu, pano360, faces_dlib.\n")
    plates = Blurrer(base)
    with_faces = Blurrer(replace(base, classes=("face", "plate"))) if args.faces else plates
    face_check = FaceCheck() if args.faces else None
    report: dict[str, Any] = {}
    for key in sets:
        if key in FLAT_SETS:
            folder = args.data / FLAT_SETS[key]
            tally = run_flat(plates, folder, args.quick, args.half)
            name = folder.name + (" `valid`" if key == "ro" else "")
            name += "" if args.half == "all" else f", {args.half} half"
            print(table(name, tally, ["all"], FALSE_NOTES[folder.name]), flush=True)
            report[key] = tally
        elif key == "pano":
            pitches = tuple(float(p) for p in args.pitches.split(","))
            tally = run_panoramas(with_faces, args.data, 1 if args.quick else args.poses, args.quick, face_check,
                                  args.half, pitches)
            rows = ["all", *(f"pitch {p:g}" for p in pitches), "seam"]
            half = "" if args.half == "all" else f", {args.half} half"
            title = f"plates_ro_dashcam `valid`{half} projected into {PANO_WIDTH}x{PANO_WIDTH // 2} panoramas"
            print(table(title, tally, rows, "Rows: pitch of the photo's centre (negative: looking down); seam: "
                        "plates the seam cuts. False detections are an upper bound (labels incomplete)."), flush=True)
            report[key] = tally
        elif key == "pano360":
            print(f"### pano360 (no labels): plate detections; crops (before | after) in {args.out}\n")
            print("\n".join(run_pano360(with_faces, args.data / "pano360" / "images", args.out, face_check)))
            print(flush=True)
    if args.misses:
        for key, tally in report.items():
            print(f"### uncovered plates, {key}\n" + "\n".join(tally.misses) + "\n")
    if "faces" in sets:
        dlib = run_faces(Blurrer(replace(base, classes=("face",), model_files={})), args.data / "faces_dlib")
        print(f"### faces_dlib: {dlib.labelled} labelled faces in {dlib.images} images: found by detection "
              f"{dlib.found} ({100 * dlib.found / max(dlib.labelled, 1):.1f}%), covered >= {COVER:.0%} by the blur "
              f"{dlib.covered} ({100 * dlib.covered / max(dlib.labelled, 1):.1f}%); detected faces covered >= "
              f"{COVER:.0%} by their own blur: {dlib.detected_covered} of {dlib.detected}")
    if face_check is not None:
        print(f"### faces detected in the panoramas: {face_check.detected_covered} of {face_check.detected} covered "
              f">= {COVER:.0%} by the blur (least covered {face_check.worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
