"""Build the plate fine-tuning dataset (YOLO format, 640x640) from plates_ro_dashcam's ``train`` split
and synthetic plates / distractors. Deterministic for a given --seed.

Only images whose labels.json boxes have split "train" are read. Ride groups (the name before ``_t``)
are split into train and held-out sources, so the held-out split (for early stopping and monitoring
only) never shares a ride with the training images.

Parts (counts per split, see COUNTS):
  real      crops of ro_dashcam train frames at native resolution around labelled plates, h-flipped half
  realdown  whole frames downscaled 0.5-0.75 (the detector's pyramid levels), letterboxed to 640
  synth     a labelled plate inpainted away and a synthetic plate pasted in its place with strong
            geometry (yaw to 75, seen from above, roll), 5-150 px tall, the real car around it
  sphere    like synth, then the frame is put on the sphere (as a pinhole view pitched down), written
            into an equirectangular panorama and seen again through a view of piiblur.sphere
            (View/Equirect/render), the plate 8-32 degrees below the horizon and off the view's axis
  neg       no labels: procedural street backgrounds (and plate-free scikit-image sample photos if
            given) with shop lettering, street-name signs, bin labels, grilles, lights, railings
  mixed     procedural backgrounds with distractors and a few synthetic plates (labelled)
  hardneg   crops of ro_dashcam train frames around a real street object the shipped net takes for a plate
            (shop lettering, road and street-name signs, chevrons, billboards, lit windows, tail lights),
            found and looked at by eye (training/ro_train_review.json), h-flipped half

The frames' labels are completed by training/ro_train_review.json: every find of the shipped net there
that overlaps no label was looked at; the plates (and the few unsure ones) become labels, the rest are
the hardneg part's negatives (--review none: the set's labels alone, as before stop 25).

Usage: python training/build_dataset.py --data ../shared/data --out training/build/dataset
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

import plates as P  # noqa: E402

COUNTS = {
    "train": {"real": 280, "realdown": 70, "synth": 460, "sphere": 200, "neg": 200, "mixed": 100, "hardneg": 200},
    "val": {"real": 25, "realdown": 5, "synth": 30, "sphere": 15, "neg": 15, "mixed": 10, "hardneg": 15},
}
SIZE = 640
GRAY = 114


def find_data(arg: str | None) -> Path:
    cands = [arg] if arg else [str(REPO / "../shared/data"), str(REPO / "../../shared/data"), "/work/shared/data"]
    for c in cands:
        if c and (Path(c) / "plates_ro_dashcam" / "labels.json").exists():
            return Path(c).resolve()
    raise SystemExit(f"plates_ro_dashcam not found in {cands}")


REVIEW = HERE / "ro_train_review.json"
NEGATIVES: dict[str, np.ndarray] = {}  # frame -> boxes of real objects that are not plates (the review)


def load_review(path: str | None) -> tuple[dict[str, list], dict[str, list]]:
    """The review's added plate boxes and its negative boxes, per frame."""
    plates: dict[str, list] = {}
    negatives: dict[str, list] = {}
    if path and path != "none":
        for find in json.loads(Path(path).read_text())["finds"]:
            into = negatives if find["verdict"] == "not_plate" else plates
            into.setdefault(find["image"], []).append(find["box"])
    return plates, negatives


def load_sources(data: Path, seed: int, val_share: float = 0.12, review: str | None = None):
    labels = json.loads((data / "plates_ro_dashcam" / "labels.json").read_text())
    added, negatives = load_review(review)
    NEGATIVES.clear()
    items = []
    for name, boxes in sorted(labels.items()):
        if not boxes or any(b.get("split") != "train" for b in boxes):
            continue  # only frames of the train split (valid frames are measurement data)
        plate_boxes = [b["box"] for b in boxes if b["class"] == "plate"] + added.get(name, [])
        items.append((name, np.array(plate_boxes, np.float64)))
        if name in negatives:
            NEGATIVES[name] = np.array(negatives[name], np.float64)
    rides = sorted({n.rsplit("_t", 1)[0] for n, _ in items})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rides))
    n_val = max(1, round(len(rides) * val_share))
    val_rides = {rides[i] for i in order[:n_val]}
    split = {"train": [it for it in items if it[0].rsplit("_t", 1)[0] not in val_rides],
             "val": [it for it in items if it[0].rsplit("_t", 1)[0] in val_rides]}
    return split, sorted(val_rides)


class Images:
    def __init__(self, root: Path):
        self.root = root / "plates_ro_dashcam" / "images"
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.cache:
            self.cache[name] = np.asarray(Image.open(self.root / name).convert("RGB"))
        return self.cache[name]


# -- helpers ---------------------------------------------------------------------------------------
def crop_around(img: np.ndarray, boxes: np.ndarray, focus: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """A SIZE x SIZE crop containing ``focus`` (x0,y0,x1,y1), padded with gray; boxes moved and clipped."""
    H, W = img.shape[:2]
    fx0, fy0, fx1, fy1 = focus
    lo_x, hi_x = max(fx1 - SIZE, min(0, W - SIZE)), min(fx0, max(0, W - SIZE))
    lo_y, hi_y = max(fy1 - SIZE, min(0, H - SIZE)), min(fy0, max(0, H - SIZE))
    x = int(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else int(lo_x)
    y = int(rng.uniform(lo_y, hi_y)) if hi_y > lo_y else int(lo_y)
    out = np.full((SIZE, SIZE, 3), GRAY, np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x), max(0, y), min(W, x + SIZE), min(H, y + SIZE)
    out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = img[sy0:sy1, sx0:sx1]
    return out, clip_boxes(boxes - [x, y, x, y])


def clip_boxes(boxes: np.ndarray, min_visible: float = 0.5) -> np.ndarray:
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    c = boxes.copy()
    c[:, [0, 2]] = c[:, [0, 2]].clip(0, SIZE)
    c[:, [1, 3]] = c[:, [1, 3]].clip(0, SIZE)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    carea = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0)
    keep = (carea >= min_visible * area) & ((c[:, 2] - c[:, 0]) >= 2) & ((c[:, 3] - c[:, 1]) >= 2)
    return c[keep]


def inpaint_box(img: np.ndarray, box: np.ndarray, grow: float = 0.25) -> np.ndarray:
    x0, y0, x1, y1 = box
    gw, gh = (x1 - x0) * grow / 2 + 2, (y1 - y0) * grow / 2 + 2
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.rectangle(mask, (int(x0 - gw), int(y0 - gh)), (int(x1 + gw), int(y1 + gh)), 255, -1)
    return cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)


def light_at(img: np.ndarray, box: np.ndarray, rng) -> float:
    x0, y0, x1, y1 = box.astype(int)
    pw, ph = max(8, x1 - x0), max(8, y1 - y0)
    reg = img[max(0, y0 - ph):y1 + ph, max(0, x0 - pw):x1 + pw]
    m = float(reg.mean()) if reg.size else 128.0
    return float(np.clip(m / 150.0 * rng.uniform(0.8, 1.25), 0.15, 1.15))


def synthetic_quad(rng, target_h: float, centre, yaw_max=75, pitch_range=(-10, 40)) -> tuple[np.ndarray, np.ndarray]:
    rgba, _ = P.render_plate(rng)
    h, w = rgba.shape[:2]
    q = P.plate_quad(rng, w, h, yaw_max=yaw_max, pitch_range=pitch_range)
    qh = q[:, 1].max() - q[:, 1].min()
    q = q * (target_h / max(qh, 1e-6))
    q = q - q.mean(0) + np.asarray(centre, np.float64)
    return rgba, q


def quad_box(q: np.ndarray) -> np.ndarray:
    return np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])


def target_height(rng) -> float:
    """5-150 px, most of the mass on small plates (6-40 px)."""
    r = rng.random()
    if r < 0.35:
        return rng.uniform(5, 16)
    if r < 0.8:
        return math.exp(rng.uniform(math.log(16), math.log(45)))
    return math.exp(rng.uniform(math.log(45), math.log(150)))


def degrade(img: np.ndarray, rng) -> np.ndarray:
    out = img
    if rng.random() < 0.25:  # motion blur
        k = int(rng.integers(3, 10))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1
        M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1)
        ker = cv2.warpAffine(ker, M, (k, k))
        ker /= max(ker.sum(), 1e-6)
        out = cv2.filter2D(out, -1, ker)
    if rng.random() < 0.2:  # low light
        f = out.astype(np.float32) / 255
        f = f ** rng.uniform(1.3, 2.2) * rng.uniform(0.5, 0.9)
        f += rng.normal(0, rng.uniform(0.01, 0.04), f.shape)
        out = np.clip(f * 255, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        out = np.clip(out + rng.normal(0, rng.uniform(2, 8), out.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=int(rng.integers(30, 92)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def hflip(img, boxes):
    img = img[:, ::-1].copy()
    if len(boxes):
        boxes = boxes.copy()
        boxes[:, [0, 2]] = SIZE - boxes[:, [2, 0]]
    return img, boxes


def scaled(img, boxes, s):
    if abs(s - 1) < 1e-3:
        return img, boxes
    H, W = img.shape[:2]
    out = cv2.resize(img, (max(1, round(W * s)), max(1, round(H * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out, boxes * s


# -- generators: each returns (image SIZE x SIZE RGB, boxes Nx4) ----------------------------------
def gen_real(src, imgs, rng):
    name, boxes = src[rng.integers(len(src))]
    img = imgs(name)
    focus = boxes[rng.integers(len(boxes))]
    out, b = crop_around(img, boxes, focus, rng)
    if rng.random() < 0.5:
        out, b = hflip(out, b)
    return out, b


def gen_hardneg(src, imgs, rng):
    with_negatives = [item for item in src if item[0] in NEGATIVES]
    if not with_negatives:  # no review, or no negative in this split's rides: a plain real crop
        return gen_real(src, imgs, rng)
    name, boxes = with_negatives[rng.integers(len(with_negatives))]
    negatives = NEGATIVES[name]
    out, b = crop_around(imgs(name), boxes, negatives[rng.integers(len(negatives))], rng)
    if rng.random() < 0.5:
        out, b = hflip(out, b)
    return out, b


def gen_realdown(src, imgs, rng):
    name, boxes = src[rng.integers(len(src))]
    img, b = scaled(imgs(name), boxes, rng.uniform(0.5, 0.75))
    out, b = crop_around(img, b, np.array([0, 0, 1, 1]), rng) if img.shape[1] > SIZE else (img, b)
    if out.shape[:2] != (SIZE, SIZE):
        canvas = np.full((SIZE, SIZE, 3), GRAY, np.uint8)
        oy = int(rng.integers(0, SIZE - out.shape[0] + 1))
        canvas[oy:oy + out.shape[0], :out.shape[1]] = out
        out, b = canvas, clip_boxes(b + np.array([0, oy, 0, oy]))
    if rng.random() < 0.5:
        out, b = hflip(out, b)
    return out, b


def synth_frame(src, imgs, rng, th: float, **geo):
    """A frame (scaled) with one labelled plate replaced by a synthetic one of height ~th;
    returns the frame, all plate boxes, the new plate's quad."""
    name, boxes = src[rng.integers(len(src))]
    i = int(rng.integers(len(boxes)))
    oh = boxes[i, 3] - boxes[i, 1]
    s = float(np.clip(th / oh, 0.3, 2.5))
    img, b = scaled(imgs(name), boxes, s)
    img = inpaint_box(img, b[i])
    cx, cy = (b[i, 0] + b[i, 2]) / 2, (b[i, 1] + b[i, 3]) / 2
    rgba, q = synthetic_quad(rng, th, (cx, cy), **geo)
    img = np.ascontiguousarray(img)
    P.paste(img, rgba, q, rng, light=light_at(img, b[i], rng))
    others = np.delete(b, i, 0)
    # the new plate may not cover all of the old one's box if it is much smaller: keep only others
    return img, others, q


def gen_synth(src, imgs, rng):
    th = target_height(rng)
    img, others, q = synth_frame(src, imgs, rng, th)
    newbox = quad_box(q)
    boxes = np.vstack([others, newbox[None]])
    out, b = crop_around(img, boxes, newbox, rng)
    if rng.random() < 0.5:
        out, b = hflip(out, b)
    return degrade(out, rng), b


def gen_sphere(src, imgs, rng):
    """Synthetic plate in a real frame, carried through an equirectangular panorama and seen again
    through a pinhole view of piiblur.sphere, 8-32 degrees below the horizon."""
    from piiblur import sphere as S

    th0 = rng.uniform(12, 70)  # plate height in the frame; the view sees it at the panorama's density
    img, others, q = synth_frame(src, imgs, rng, th0, yaw_max=75, pitch_range=(10, 45))
    if img.shape[1] < 1.2 * 1280 * 0.9:  # the view must fit inside the frame: upscale small frames
        k = 1.3 * 1280 / img.shape[1]
        img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_LINEAR)
        others, q, th0 = others * k, q * k, th0 * k
    H, W = img.shape[:2]
    f0 = W / (2 * math.tan(math.radians(rng.uniform(70, 100)) / 2))  # the frame as a pinhole view
    plate_c = q.mean(0)
    # pitch the frame's camera so the plate sits 8-32 degrees below the horizon
    v0 = S.View(0.0, 0.0, W, H, f0)
    _, e = S.angles(v0.rays(plate_c[0], plate_c[1]))
    want = -rng.uniform(8, 32)
    yaw0 = rng.uniform(-180, 180)
    v0 = S.View(yaw0, float(want - e), W, H, f0)
    # an equirectangular panorama at a density of 0.5-1.0x the frame's, covering the frame's footprint
    full_w = int(2 * math.pi * f0 * rng.uniform(max(0.5, 0.75 * 1280 / W), 1.0)) // 2 * 2
    full = S.Equirect(full_w, full_w // 2, full_w, full_w // 2)
    u, v = np.meshgrid(np.linspace(0, W, 9), np.linspace(0, H, 9))
    ey, ep = S.angles(v0.rays(u, v))
    ex, eyy = full.to_pixels(ey, ep)
    cx_pan = full.to_pixels(np.array(yaw0), np.array(0.0))[0]
    ex = cx_pan + (ex - cx_pan + full_w / 2) % full_w - full_w / 2
    left, top = int(np.floor(ex.min())) - 2, max(0, int(np.floor(eyy.min())) - 2)
    right, bottom = int(np.ceil(ex.max())) + 2, min(full.full_height, int(np.ceil(eyy.max())) + 2)
    geo = S.Equirect(right - left, bottom - top, full_w, full_w // 2, left % full_w, top)
    gx, gy = np.meshgrid(np.arange(geo.width) + 0.5, np.arange(geo.height) + 0.5)
    yy, pp = geo.to_angles(gx, gy)
    pu, pv, front = v0.project(S.directions(yy, pp))
    pu = np.where(front, pu, -1e4).astype(np.float32) - 0.5
    pv = np.where(front, pv, -1e4).astype(np.float32) - 0.5
    pano = cv2.remap(img, pu, pv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(GRAY,) * 3)
    # the view the detector would use: panorama density, the plate off its axis
    py, pp_ = S.angles(v0.rays(plate_c[0], plate_c[1]))
    half = math.degrees(math.atan(SIZE / 2 / geo.focal))
    off = max(0.0, half - math.degrees(math.atan(th0 / geo.focal)) - 6)
    vy = float(py + rng.uniform(-off, off) / max(math.cos(math.radians(pp_)), 0.3))
    vp = float(np.clip(pp_ + rng.uniform(-off, off), -80, 0))
    corners = (np.array([0, SIZE, SIZE, 0.0]), np.array([0, 0, SIZE, float(SIZE)]))
    for _ in range(30):  # a view that lies within the frame's footprint (shrinking the offset)
        view = S.View(vy, vp, SIZE, SIZE, geo.focal)
        cu, cv_, cf = v0.project(view.rays(*corners))
        if cf.all() and cu.min() >= 0 and cv_.min() >= 0 and cu.max() <= W and cv_.max() <= H:
            break
        vy, vp = py + (vy - py) * 0.8 + rng.normal(0, 1), pp_ + (vp - pp_) * 0.8 + rng.normal(0, 1)
    out = S.render(pano, geo, view)
    # boxes: each box outline through the same chain
    quads = [q] + [np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]) for b in others]
    boxes = []
    for qq in quads:
        t = np.linspace(0, 1, 6)[:, None]
        outline = np.vstack([qq[k] + (qq[(k + 1) % 4] - qq[k]) * t for k in range(4)])
        ru, rv, fr = view.project(v0.rays(outline[:, 0], outline[:, 1]))
        if fr.all():
            boxes.append([ru.min(), rv.min(), ru.max(), rv.max()])
    b = clip_boxes(np.array(boxes).reshape(-1, 4))
    return degrade(out, rng), b


def negative_canvas(rng, photos, n_distractors):
    img = P.background(rng, SIZE, photos)
    for _ in range(n_distractors):
        rgba = P.render_text_sign(rng) if rng.random() < 0.6 else P.shape_distractor(rng, int(rng.integers(12, 120)))
        h, w = rgba.shape[:2]
        th = target_height(rng) * rng.uniform(0.8, 2.0)
        q = P.plate_quad(rng, w, h, yaw_max=70, pitch_range=(-30, 40))
        q = q * (th / max(q[:, 1].max() - q[:, 1].min(), 1e-6))
        q = q - q.mean(0) + rng.uniform(0, SIZE, 2)
        P.paste(img, rgba, q, rng, light=rng.uniform(0.5, 1.1))
    return img


def gen_neg(src, imgs, rng, photos=None):
    img = negative_canvas(rng, photos, int(rng.integers(3, 12)))
    return degrade(img, rng), np.zeros((0, 4))


def gen_mixed(src, imgs, rng, photos=None):
    img = negative_canvas(rng, photos, int(rng.integers(2, 8)))
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        th = target_height(rng)
        rgba, q = synthetic_quad(rng, th, rng.uniform(40, SIZE - 40, 2))
        P.paste(img, rgba, q, rng, light=rng.uniform(0.4, 1.1))
        boxes.append(quad_box(q))
    return degrade(img, rng), clip_boxes(np.array(boxes))


GENERATORS = {"real": gen_real, "realdown": gen_realdown, "synth": gen_synth, "sphere": gen_sphere,
              "neg": gen_neg, "mixed": gen_mixed, "hardneg": gen_hardneg}


def skimage_photos(path: str | None) -> list[np.ndarray]:
    """Plate-free sample photos from a scikit-image wheel's skimage/data, if a wheel path is given."""
    if not path:
        return []
    import zipfile

    names = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
             "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "page.png", "text.png", "rocket.jpg",
             "clock_motion.png", "color.png", "logo.png", "retina.jpg"]  # not the motorcycle pair
    out = []
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.startswith("skimage/data/") and n.split("/")[-1] in names:
                im = Image.open(io.BytesIO(z.read(n))).convert("RGB")
                out.append(np.asarray(im))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the shared data folder (holds plates_ro_dashcam)")
    ap.add_argument("--out", default=str(HERE / "build" / "dataset"))
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count (quick tests: 0.02)")
    ap.add_argument("--review", default=str(REVIEW), help="the review of the train frames' unlabelled finds "
                    "(training/ro_train_review.json; 'none': the set's labels alone)")
    ap.add_argument("--skimage-wheel", default=None, help="a scikit-image wheel: its plate-free sample photos")
    args = ap.parse_args()
    data = find_data(args.data)
    split, val_rides = load_sources(data, args.seed, review=args.review)
    imgs = Images(data)
    photos = skimage_photos(args.skimage_wheel)
    out = Path(args.out)
    manifest = {"seed": args.seed, "data": str(data), "val_rides": val_rides, "photos": len(photos),
                "sources": {k: len(v) for k, v in split.items()},
                "source_boxes": {k: int(sum(len(b) for _, b in v)) for k, v in split.items()},
                "fonts": [os.path.basename(f) for f in P.ANY_FONTS], "counts": {},
                "review": args.review if args.review == "none" else os.path.relpath(args.review, REPO),
                "review_sha256": None if args.review == "none" else
                hashlib.sha256(Path(args.review).read_bytes()).hexdigest()}
    t0 = time.time()
    for sp, counts in COUNTS.items():
        (out / "images" / sp).mkdir(parents=True, exist_ok=True)
        (out / "labels" / sp).mkdir(parents=True, exist_ok=True)
        for part, n in counts.items():
            n = max(1, round(n * args.scale))
            nb = 0
            for k in range(n):
                # one generator per image, seeded by (seed, split, part, k): any image can be rebuilt alone
                key = int(hashlib.sha256(f"{args.seed}/{sp}/{part}/{k}".encode()).hexdigest()[:15], 16)
                rng = np.random.default_rng(key)
                gen = GENERATORS[part]
                kw = {"photos": photos} if part in ("neg", "mixed") else {}
                img, boxes = gen(split[sp], imgs, rng, **kw)
                stem = f"{part}_{k:05d}"
                Image.fromarray(img).save(out / "images" / sp / f"{stem}.jpg", quality=95)
                lines = []
                for x0, y0, x1, y1 in boxes:
                    lines.append(f"0 {(x0 + x1) / 2 / SIZE:.6f} {(y0 + y1) / 2 / SIZE:.6f} "
                                 f"{(x1 - x0) / SIZE:.6f} {(y1 - y0) / SIZE:.6f}")
                nb += len(lines)
                (out / "labels" / sp / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            manifest["counts"][f"{sp}/{part}"] = {"images": n, "boxes": nb}
            print(f"{sp}/{part}: {n} images, {nb} boxes ({time.time() - t0:.0f} s)", flush=True)
    (out / "data.yaml").write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
                                   "names:\n  0: License_Plate\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
