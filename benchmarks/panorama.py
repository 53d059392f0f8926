"""Recall on 360-degree panoramas: synthetic ones with exact truth, and a look at real ones.

    python benchmarks/panorama.py [--data ../shared/data] [--quick] [--images N] [--width W]
                                  [--view-sets standard,fast] [--no-planar] [--real | --no-real]
                                  [--out /tmp/pii-blur-panorama]

Synthetic part: real face crops (faces_dlib) and plate crops (plates_openalpr_eu/us), each
with context around its labelled box, are laid on the sphere as flat patches tangent at a
chosen yaw and pitch, and drawn into an equirectangular panorama (a real landscape,
pannellum_examplepano.jpg, turned by a random yaw) with the projection's true distortion.
Objects sit on the equator, in pitch bands out to +-80 degrees, and astride the seam, at box
heights of 16-96 px at the equator's scale (S = angular height x W / 360). An object's
truth is its footprint: the panorama pixels whose direction falls inside the labelled box.
It counts as protected when the blur mask of its class covers 70% of its footprint.

The same panoramas go through planar tiling (as if they were flat photos) and through views
of the sphere (each view set asked for), and the script prints recall per class and pitch
band, per size and across the seam, the seconds per image (detection and blur) and the
collateral blur (pixels blurred outside every object's slightly grown footprint), then
whether the issue's Done-when criteria hold.

Real part: every file in pano360/images goes through the sphere path as the tool would
take it (projection auto); the script prints what it found and where, and writes a PNG per
file (an overview with outlines and before/after views of each detection) under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from piiblur import sphere
from piiblur import synthetic as syn
from piiblur.detections import Detections
from piiblur.formats import read_image
from piiblur.pipeline import DEFAULT_THRESHOLDS, Blurrer, Settings

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
BACKGROUND = "pano360/images/pannellum_examplepano.jpg"
PROTECTED_SHARE = 0.7
BANDS: tuple[tuple[str, float, float], ...] = (
    ("0", 0, 10), ("10-30", 10, 30), ("30-50", 30, 50), ("50-65", 50, 65), ("65-75", 65, 75), ("75-80", 75, 80),
)
SIZES = {"face": (16, 24, 32, 48, 64, 96), "plate": (16, 24, 32, 48)}
FACE_MARGIN = 0.4  # context each side, as a share of the box's width / height
PLATE_MARGIN = (1.0, 3.0)  # x: share of the plate's width; y: share of its height (the car around it)
MAX_UPSCALE = {"face": 2.0, "plate": 2.5}
PER_SLOT = {"face": 2, "plate": 1}  # objects of each class per (band, sign) slot and panorama
SEAM = "seam"
SEAM_PITCH = 25.0  # seam objects sit astride x=0/W at |pitch| below this


# -- crops -----------------------------------------------------------------------------------------
def load_crops(data: Path) -> dict[str, list[syn.Crop]]:
    crops: dict[str, list[syn.Crop]] = {"face": [], "plate": []}
    sources = [("faces_dlib", "face"), ("plates_openalpr_eu", "plate"), ("plates_openalpr_us", "plate")]
    for folder, cls in sources:
        labels = json.loads((data / folder / "labels.json").read_text())
        for name, boxes in sorted(labels.items()):
            wanted = [b for b in boxes if b["class"] == cls and b["box"][3] - b["box"][1] >= (20 if cls == "plate"
                                                                                               else 0)]
            if not wanted:
                continue
            rgb = read_image(data / folder / "images" / name).upright_rgb()
            for b in wanted:
                x1, y1, x2, y2 = (float(v) for v in b["box"])
                if cls == "face":
                    mx, my = FACE_MARGIN * (x2 - x1), FACE_MARGIN * (y2 - y1)
                else:
                    mx, my = PLATE_MARGIN[0] * (x2 - x1), PLATE_MARGIN[1] * (y2 - y1)
                crops[cls].append(syn.cut(rgb, (x1, y1, x2, y2), mx, my))
    return crops


# -- synthetic panoramas ---------------------------------------------------------------------------
@dataclass
class Truth:
    cls: str
    band: str  # a BANDS name or SEAM
    sign: str  # "+" or "-" (pitch >= 0 or < 0)
    size: int
    placed: syn.Placed


@dataclass
class Scene:
    pixels: np.ndarray
    objects: list[Truth]
    skipped: int = 0


def slots() -> list[tuple[str, str]]:
    """(band, sign) slots of one panorama; the equator and the seam twice, to match the pooled bands."""
    out = [("0", "+"), ("0", "-")]
    for name, _lo, _hi in BANDS[1:]:
        out += [(name, "+"), (name, "-")]
    return [*out, (SEAM, "+"), (SEAM, "-")]


def make_scene(index: int, background: np.ndarray, crops: dict[str, list[syn.Crop]], width: int,
               seed: int = 2024) -> Scene:
    rng = np.random.default_rng(seed + index)
    height = width // 2
    geo = sphere.Equirect(width, height, width, height)
    pano = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    pano = np.ascontiguousarray(np.roll(pano, int(rng.integers(width)), axis=1))
    scene = Scene(pano, [])
    taken: list[tuple[float, float, float]] = []  # yaw, pitch, radius of each object placed
    band_of = {name: (lo, hi) for name, lo, hi in BANDS}
    counter = 0
    for slot_index, (band, sign) in enumerate(slots()):
        for cls in ("face", "plate"):
            sizes = SIZES[cls]
            for k in range(PER_SLOT[cls]):
                # sizes cycle over panoramas and slots, so every band sees every size
                size = sizes[(index * PER_SLOT[cls] + k + slot_index * 5) % len(sizes)]
                usable = [c for c in crops[cls] if c.box_height * MAX_UPSCALE[cls] >= size]
                crop = usable[int(rng.integers(len(usable)))]
                crop = syn.scaled(crop, size / crop.box_height)
                radius = syn.angular_radius(crop, geo.focal)
                x1, y1, x2, y2 = crop.box
                box_w_deg = (x2 - x1) * 360.0 / width
                spot = _free_spot(rng, band, sign, band_of, radius, box_w_deg, taken)
                counter += 1
                if spot is None:
                    scene.skipped += 1
                    continue
                yaw, pitch = spot
                taken.append((yaw, pitch, radius))
                bw, bh = x2 - x1, y2 - y1
                grow = (0.5 * bw + 3, 0.5 * bh + 3) if cls == "face" else (0.6 * bh + 3, 0.6 * bh + 3)
                placed = syn.place(pano, geo, crop, yaw, pitch, size, grow=grow)
                scene.objects.append(Truth(cls, band, "+" if pitch >= 0 else "-", size, placed))
    return scene


def _free_spot(rng: np.random.Generator, band: str, sign: str, band_of: dict[str, tuple[float, float]],
               radius: float, box_w_deg: float, taken: list[tuple[float, float, float]],
               tries: int = 1000) -> tuple[float, float] | None:
    for _ in range(tries):
        if band == SEAM:
            pitch = float(rng.uniform(0, SEAM_PITCH)) * (1 if sign == "+" else -1)
            yaw = 180.0 + float(rng.uniform(-0.35, 0.35)) * box_w_deg / max(math.cos(math.radians(pitch)), 0.1)
            yaw = (yaw + 180) % 360 - 180
        else:
            lo, hi = band_of[band]
            pitch = float(rng.uniform(lo, hi)) * (1 if sign == "+" else -1)
            # keep clear of the seam (seam objects have a category of their own)
            spread = math.sin(math.radians(radius)) / max(math.cos(math.radians(pitch)), 1e-6)
            half = math.degrees(math.asin(min(spread, 1.0)))
            limit = max(180.0 - half - 1.0, 0.0)
            yaw = float(rng.uniform(-limit, limit))
        if all(syn.separation(yaw, pitch, y, p) > radius + r + 0.5 for y, p, r in taken):
            return yaw, pitch
    return None


# -- methods and scoring -----------------------------------------------------------------------------
@dataclass
class Score:
    hits: dict[tuple, int] = field(default_factory=dict)
    totals: dict[tuple, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    collateral: list[float] = field(default_factory=list)  # share of panorama pixels
    collateral_of_blur: list[float] = field(default_factory=list)  # share of blurred pixels
    background: list[float] = field(default_factory=list)  # share of pixels blurred off every pasted crop
    detections: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, key: tuple, hit: bool) -> None:
        self.totals[key] = self.totals.get(key, 0) + 1
        self.hits[key] = self.hits.get(key, 0) + int(hit)

    def recall(self, match: Callable[[tuple], bool]) -> tuple[int, int]:
        keys = [k for k in self.totals if match(k)]
        return sum(self.hits[k] for k in keys), sum(self.totals[k] for k in keys)


@dataclass(frozen=True)
class Method:
    name: str
    settings: Settings
    on_sphere: bool


def run_method(blurrer: Blurrer, method: Method, scene: Scene, score: Score) -> None:
    rgb = scene.pixels
    h, w = rgb.shape[:2]
    geo = sphere.Equirect(w, h, w, h) if method.on_sphere else None
    start = time.perf_counter()
    found = blurrer.detect(rgb, geo)
    if len(found):  # sphere.blur cannot take an empty Detections without places
        blurrer.blur(rgb, found, geo)
    score.seconds.append(time.perf_counter() - start)
    score.detections += len(found)
    masks = {cls: blurrer.protected(found.of(cls), (h, w), geo) if found.count(cls) else np.zeros((h, w), bool)
             for cls in SIZES}
    for t in scene.objects:
        coverage = t.placed.coverage(masks[t.cls])
        score.add((t.cls, t.band, t.sign, t.size), coverage >= PROTECTED_SHARE)
        if coverage < PROTECTED_SHARE:
            score.misses.append(f"{t.cls} {t.band:>6} size {t.size:>2} yaw {t.placed.yaw:7.1f} pitch "
                                f"{t.placed.pitch:6.1f} covered {coverage:.2f}")
    everything = masks["face"] | masks["plate"]
    near = np.zeros((h, w), bool)
    patches = np.zeros((h, w), bool)
    for t in scene.objects:
        t.placed.mask("around", near)
        t.placed.mask("patch", patches)
    outside = int(np.count_nonzero(everything & ~near))
    score.collateral.append(outside / (h * w))
    score.collateral_of_blur.append(outside / max(int(np.count_nonzero(everything)), 1))
    score.background.append(int(np.count_nonzero(everything & ~patches)) / (h * w))


def _cell(hit: int, total: int) -> str:
    return f"{hit:>3}/{total:<3} {100 * hit / total:5.1f}%" if total else f"{'-':>14}"


def table(name: str, score: Score) -> str:
    cols = [b[0] for b in BANDS] + [SEAM]
    lines = [f"== {name}: {len(score.seconds)} images, {np.mean(score.seconds):.2f} s/image (detect + blur), "
             f"{score.detections / max(len(score.seconds), 1):.1f} detections/image, collateral blur "
             f"{100 * np.mean(score.collateral):.3f}% of pixels ({100 * np.mean(score.collateral_of_blur):.1f}% "
             f"of blurred pixels); blur on the bare background (off every pasted crop) "
             f"{100 * np.mean(score.background):.3f}% of pixels"]
    lines.append(f"{'class':<6}{'pitch':<6}" + "".join(f"{c:>15}" for c in cols) + f"{'all':>15}")
    for cls in SIZES:
        for sign in ("+-", "+", "-"):
            cells = []
            for c in cols:
                if c in ("0", SEAM) and sign != "+-":
                    cells.append("")
                else:
                    cells.append(_cell(*score.recall(_where(cls, band=c, signs=sign))))
            cells.append(_cell(*score.recall(_where(cls, signs=sign))))
            lines.append(f"{cls:<6}{sign:<6}" + "".join(f"{c:>15}" for c in cells))
    sizes = sorted({s for v in SIZES.values() for s in v})
    for title, skip in (("", None), ("   (|pitch| <= 75 and seam)", "75-80")):
        lines.append(f"{'class':<6}{'size':<6}" + "".join(f"{str(s) + ' px':>15}" for s in sizes) + title)
        for cls in SIZES:
            cells = [_cell(*score.recall(_where(cls, size=s, skip=skip))) for s in sizes]
            lines.append(f"{cls:<6}{'':<6}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def _where(cls: str, band: str | None = None, signs: str = "+-", size: int | None = None,
           skip: str | None = None, min_size: int = 0) -> Callable[[tuple], bool]:
    """A filter on score keys (class, band, sign, size)."""

    def match(k: tuple) -> bool:
        return (k[0] == cls and (band is None or k[1] == band) and (k[1] == SEAM or k[2] in signs)
                and (size is None or k[3] == size) and k[1] != skip and k[3] >= min_size)

    return match


def criteria(score: Score) -> list[tuple[str, bool]]:
    """The issue's Done-when: faces; plates at and below the horizon (where plates are looked for)."""
    out = []
    for cls, signs in (("face", "+-"), ("plate", "-")):
        eq_hit, eq_total = score.recall(_where(cls, band="0"))
        if not eq_total:
            continue
        eq = 100 * eq_hit / eq_total
        for band in [b[0] for b in BANDS[1:5]] + [SEAM]:
            hit, total = score.recall(_where(cls, band=band, signs=signs))
            if total:
                r = 100 * hit / total
                which = "both signs" if signs == "+-" or band == SEAM else "below"
                out.append((f"{cls} {band:>6} ({which}): {r:5.1f}% vs equator {eq:5.1f}% (within 2 points)",
                            r >= eq - 2.0))
    hit, total = score.recall(_where("face", skip="75-80", min_size=24))
    if total:
        out.append((f"faces >= 24 px, |pitch| <= 75 and seam: {100 * hit / total:5.1f}% (>= 95%)",
                    hit / total >= 0.95))
    return out


# -- real panoramas -----------------------------------------------------------------------------------
def look_at_real(blurrer: Blurrer, folder: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print(f"\n== real panoramas in {folder} (projection auto, view set {blurrer.settings.views}); pictures in {out}")
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}:
            continue
        image = read_image(path)
        rgb = image.upright_rgb()
        geo = blurrer.geometry(image)
        start = time.perf_counter()
        found = blurrer.detect(rgb, geo)
        blurred = blurrer.blur(rgb, found, geo) if len(found) else rgb
        seconds = time.perf_counter() - start
        kind = "equirectangular" if geo is not None else "planar"
        extra = ""
        if geo is not None and (geo.full_width, geo.full_height) != (geo.width, geo.height):
            extra = f" (crop of {geo.full_width}x{geo.full_height} at {geo.left},{geo.top})"
        print(f"{path.name}: {image.size[0]}x{image.size[1]} {kind}{extra}, {found.count('face')} faces, "
              f"{found.count('plate')} plates, {seconds:.1f} s")
        for record in found.to_records():
            where = record.get("sphere")
            place = (f"yaw {where['yaw']:7.1f} pitch {where['pitch']:6.1f} size {where['width_deg']:.1f}x"
                     f"{where['height_deg']:.1f} deg" if isinstance(where, dict) else f"box {record['box']}")
            print(f"    {record['class']:<5} {record['score']:.2f}  {place}")
        cv2.imwrite(str(out / f"{path.stem}.png"), cv2.cvtColor(contact(rgb, blurred, found, geo), cv2.COLOR_RGB2BGR))


def contact(rgb: np.ndarray, blurred: np.ndarray, found: Detections, geo: sphere.Equirect | None,
            width: int = 1600, cell: int = 160) -> np.ndarray:
    """An overview of the blurred picture with outlines, and before/after of every detection."""
    h, w = rgb.shape[:2]
    scale = width / w
    overview = cv2.resize(blurred, (width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA).copy()
    tiles: list[np.ndarray] = []
    for i in range(len(found)):
        colour = (255, 0, 0) if found.class_ids[i] == 0 else (0, 160, 255)
        if geo is not None and found.outlines is not None and found.places is not None:
            pts = found.outlines[i]
            for shift in (-geo.width, 0, geo.width):
                poly = np.round((pts + np.array([shift, 0])) * scale).astype(np.int32)
                cv2.polylines(overview, [poly], True, colour, 1, cv2.LINE_AA)
            yaw, pitch, aw, ah = (float(v) for v in found.places[i])
            fov = float(np.clip(2.5 * max(aw, ah), 3, 120))
            view = sphere.view_of(yaw, pitch, fov, cell / (2 * math.tan(math.radians(fov) / 2)))
            pair = [sphere.render(img, geo, view) for img in (rgb, blurred)]
        else:
            x1, y1, x2, y2 = (float(v) for v in found.xyxy[i])
            cv2.rectangle(overview, (round(x1 * scale), round(y1 * scale)), (round(x2 * scale), round(y2 * scale)),
                          colour, 1)
            pad = 0.75 * max(x2 - x1, y2 - y1)
            cx0, cy0, cx1, cy1 = (max(0, int(x1 - pad)), max(0, int(y1 - pad)), min(w, int(x2 + pad)),
                                  min(h, int(y2 + pad)))
            pair = [img[cy0:cy1, cx0:cx1] for img in (rgb, blurred)]
        pair = [cv2.resize(np.ascontiguousarray(p), (cell, cell), interpolation=cv2.INTER_AREA) for p in pair]
        tile = np.hstack(pair)
        cv2.putText(tile, f"{found.class_names[i]} {found.scores[i]:.2f}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [overview]
    per_row = max(1, width // (2 * cell))
    for start in range(0, len(tiles), per_row):
        row = np.zeros((cell, width, 3), np.uint8)
        for j, tile in enumerate(tiles[start : start + per_row]):
            row[:, j * 2 * cell : (j + 1) * 2 * cell] = tile
        rows.append(row)
    return np.vstack(rows)


# -- main ---------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=10, help="synthetic panoramas (default 10)")
    parser.add_argument("--width", type=int, default=6000, help="synthetic panorama width (default 6000)")
    parser.add_argument("--quick", action="store_true", help="3 panoramas of 4000x2000")
    parser.add_argument("--view-sets", default="standard", help="comma-separated sphere.VIEW_SETS names, or 'all'")
    parser.add_argument("--no-planar", action="store_true", help="skip planar tiling")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--real", dest="real", action="store_true", default=True)
    parser.add_argument("--no-real", dest="real", action="store_false")
    parser.add_argument("--out", type=Path, default=Path("/tmp/pii-blur-panorama"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--precision", default="auto", choices=["auto", "int8", "fp32"])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--faces-per-slot", type=int, default=PER_SLOT["face"],
                        help=f"faces per pitch band, sign and panorama (default {PER_SLOT['face']})")
    parser.add_argument("--misses", action="store_true", help="list every object missed, per method")
    parser.add_argument("--face-threshold", type=float, default=DEFAULT_THRESHOLDS["face"])
    parser.add_argument("--plate-threshold", type=float, default=DEFAULT_THRESHOLDS["plate"])
    args = parser.parse_args()
    if not (args.data / "pano360" / "images").is_dir():
        print(f"no evaluation data under {args.data}: nothing to measure")
        return 0
    thresholds = {"face": args.face_threshold, "plate": args.plate_threshold}
    base = Settings(threads=args.threads, precision=args.precision, thresholds=thresholds)
    if not args.no_synthetic:
        synthetic(args, base)
    if args.real:
        look_at_real(Blurrer(base), args.data / "pano360" / "images", args.out)
    return 0


def synthetic(args: argparse.Namespace, base: Settings) -> None:
    count, width = (3, 4000) if args.quick else (args.images, args.width)
    PER_SLOT["face"] = args.faces_per_slot
    view_sets = list(sphere.VIEW_SETS) if args.view_sets == "all" else args.view_sets.split(",")
    methods = [] if args.no_planar else [Method("planar tiles", dataclasses.replace(base, projection="planar"), False)]
    methods += [Method(f"sphere views '{v}'", dataclasses.replace(base, views=v), True) for v in view_sets]
    crops = load_crops(args.data)
    background = read_image(args.data / BACKGROUND).upright_rgb()
    print(f"synthetic: {count} panoramas of {width}x{width // 2}, {len(crops['face'])} face and "
          f"{len(crops['plate'])} plate crops, seed {args.seed}; a box is protected when its class's blur covers "
          f"{PROTECTED_SHARE:.0%} of its footprint")
    blurrers = {m.name: Blurrer(m.settings) for m in methods}
    scores = {m.name: Score() for m in methods}
    made = 0.0
    skipped = placed = 0
    for i in range(count):
        start = time.perf_counter()
        scene = make_scene(i, background, crops, width, args.seed)
        made += time.perf_counter() - start
        skipped += scene.skipped
        placed += len(scene.objects)
        for m in methods:
            run_method(blurrers[m.name], m, scene, scores[m.name])
        print(f"  panorama {i + 1}/{count}: {len(scene.objects)} objects, "
              + ", ".join(f"{m.name} {scores[m.name].seconds[-1]:.1f} s" for m in methods), flush=True)
    print(f"{placed} objects placed ({skipped} found no free spot), {made / count:.1f} s/panorama to make; "
          f"seam = placed astride x=0/W at |pitch| < {SEAM_PITCH:g}; bands pool both signs, rows + and - split them\n")
    for m in methods:
        print(table(m.name, scores[m.name]))
        print("Done-when criteria:")
        for text, ok in criteria(scores[m.name]):
            print(f"  [{'ok' if ok else 'NO'}] {text}")
        if args.misses:
            print("Missed:")
            for line in scores[m.name].misses:
                print(f"  {line}")
        print()


if __name__ == "__main__":
    sys.exit(main())
