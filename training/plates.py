"""Synthetic licence plates and street-text distractors, drawn with PIL.

Every function takes a ``numpy.random.Generator`` so the dataset build is deterministic.
Fonts: DejaVu (Debian package ``fonts-dejavu-core``, /usr/share/fonts/truetype/dejavu);
Liberation fonts are used too when ``fonts-liberation`` is installed.
"""

from __future__ import annotations

import glob
import math
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
             "/usr/share/fonts/truetype/liberation2"]


def _fonts(pattern: str) -> list[str]:
    found: list[str] = []
    for d in FONT_DIRS:
        found += sorted(glob.glob(os.path.join(d, pattern)))
    return found


PLATE_FONTS = [f for f in _fonts("*Bold*.ttf") if "Oblique" not in f and "Italic" not in f] or _fonts("*.ttf")
ANY_FONTS = _fonts("*.ttf")
if not ANY_FONTS:
    raise SystemExit("no TTF fonts found: apt-get install fonts-dejavu-core")

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
DIGITS = "0123456789"

EU_BLUE = (0, 51, 153)
EU_YELLOW_STARS = (255, 204, 0)
PLATE_WHITE = (236, 236, 232)
PLATE_YELLOW = (245, 196, 20)
UK_YELLOW = (250, 210, 30)


def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, max(4, int(size)))


def registration(rng: np.random.Generator, style: str) -> str:
    def L(n):
        return "".join(rng.choice(list(LETTERS), n))

    def D(n):
        return "".join(rng.choice(list(DIGITS), n))

    if style == "ro":
        return f"{L(rng.integers(1, 3))} {D(2)} {L(3)}"
    if style == "nl":
        pats = [lambda: f"{D(2)}-{L(3)}-{D(1)}", lambda: f"{L(2)}-{D(3)}-{L(1)}", lambda: f"{D(1)}-{L(3)}-{D(2)}",
                lambda: f"{L(1)}-{D(3)}-{L(2)}", lambda: f"{L(2)}-{D(2)}-{L(2)}"]
        return pats[rng.integers(len(pats))]()
    if style == "uk":
        return f"{L(2)}{D(2)} {L(3)}"
    if style == "de":
        return f"{L(rng.integers(1, 4))} {L(rng.integers(1, 3))} {D(rng.integers(1, 5))}"
    if style == "us":
        pats = [lambda: f"{D(1)}{L(3)}{D(3)}", lambda: f"{L(3)} {D(4)}", lambda: f"{L(3)}-{D(3)}",
                lambda: f"{D(3)} {L(3)}"]
        return pats[rng.integers(len(pats))]()
    if style == "fr":
        return f"{L(2)}-{D(3)}-{L(2)}"
    return f"{L(3)} {D(3)}"


def _fit_text(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int, int, int], font_path: str,
              fill, img: Image.Image, stretch: float = 1.0) -> None:
    """Draw text filling ``box`` (x0, y0, x1, y1): rendered big, then resized into the box."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    f = font(font_path, 200)
    left, t, r, b = draw.textbbox((0, 0), text, font=f)
    tw, th = r - left, b - t
    layer = Image.new("L", (tw + 20, th + 20), 0)
    ImageDraw.Draw(layer).text((10 - left, 10 - t), text, font=f, fill=255)
    # keep the aspect within limits: plate fonts are condensed, never wider than about 1.3x
    scale_h = bh / (th + 20)
    w = min(bw, int((tw + 20) * scale_h * stretch))
    layer = layer.resize((max(1, w), max(1, bh)), Image.LANCZOS)
    img.paste(Image.new("RGB", layer.size, fill), (x0 + (bw - w) // 2, y0), layer)


def _eu_band(img: Image.Image, draw: ImageDraw.ImageDraw, w: int, h: int, code: str, rng) -> int:
    bw = int(h * 0.42)
    draw.rectangle([0, 0, bw, h], fill=EU_BLUE)
    cx, cy, r = bw / 2, h * 0.32, bw * 0.28
    for k in range(12):
        a = 2 * math.pi * k / 12
        sx, sy = cx + r * math.cos(a), cy + r * math.sin(a)
        s = max(1, bw * 0.045)
        draw.ellipse([sx - s, sy - s, sx + s, sy + s], fill=EU_YELLOW_STARS)
    _fit_text(draw, code, (int(bw * 0.15), int(h * 0.62), int(bw * 0.85), int(h * 0.9)),
              PLATE_FONTS[0], (255, 255, 255), img)
    return bw


def render_plate(rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, str]:
    """An RGBA plate image (rectangular, the plate fills it) and its kind."""
    kinds = ["eu_white", "eu_yellow", "nl_yellow", "uk_yellow", "scooter", "us", "ro"]
    probs = np.array([0.18, 0.14, 0.18, 0.12, 0.12, 0.10, 0.16])
    kind = kind or str(rng.choice(kinds, p=probs / probs.sum()))
    fpath = PLATE_FONTS[rng.integers(len(PLATE_FONTS))]
    if kind == "scooter":
        w, h = int(rng.uniform(150, 230)), int(rng.uniform(130, 170))
    elif kind == "us":
        w, h = 300, 150
    else:
        h = 110
        w = int(h * rng.uniform(4.2, 4.9))
    bg = {"eu_white": PLATE_WHITE, "ro": PLATE_WHITE, "us": (240, 240, 235)}.get(kind, PLATE_YELLOW)
    if kind == "uk_yellow":
        bg = UK_YELLOW
    if kind == "scooter":
        bg = [PLATE_YELLOW, PLATE_WHITE, (60, 110, 200), (245, 196, 20)][rng.integers(4)]
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    ink = (20, 20, 20)
    if kind == "scooter" and bg == (60, 110, 200):
        ink = (235, 235, 235)
    x_start = int(h * 0.06)
    if kind in ("eu_white", "eu_yellow", "nl_yellow", "ro") or (kind == "uk_yellow" and rng.random() < 0.5):
        any_code = str(rng.choice(["D", "NL", "F", "B", "L", "I", "PL", "E", "RO", "A"]))
        code = {"ro": "RO", "nl_yellow": "NL", "uk_yellow": "GB"}.get(kind, any_code)
        x_start = _eu_band(img, d, w, h, code, rng) + int(h * 0.08)
    if kind == "us":
        state = str(rng.choice(["CALIFORNIA", "TEXAS", "NEW YORK", "OHIO", "FLORIDA", "OREGON", "ARIZONA"]))
        col = [(180, 20, 30), (20, 40, 140), (20, 20, 20)][rng.integers(3)]
        _fit_text(d, state, (int(w * 0.2), int(h * 0.05), int(w * 0.8), int(h * 0.25)),
                  ANY_FONTS[rng.integers(len(ANY_FONTS))], col, img, 1.4)
        _fit_text(d, registration(rng, "us"), (int(w * 0.06), int(h * 0.3), int(w * 0.94), int(h * 0.8)), fpath,
                  [(20, 40, 140), (20, 20, 20), (150, 20, 30)][rng.integers(3)], img)
        if rng.random() < 0.6:
            _fit_text(d, str(rng.choice(["DMV.CA.GOV", "LONE STAR STATE", "EMPIRE STATE", "SUNSHINE STATE"])),
                      (int(w * 0.25), int(h * 0.83), int(w * 0.75), int(h * 0.95)), ANY_FONTS[0], (60, 60, 60),
                      img, 1.4)
    elif kind == "scooter":
        reg = registration(rng, str(rng.choice(["nl", "de", "ro"]))).replace("-", " ").split(" ")
        top, bot = " ".join(reg[: max(1, len(reg) // 2)]), " ".join(reg[max(1, len(reg) // 2):]) or reg[0]
        m = int(h * 0.08)
        _fit_text(d, top, (m, m, w - m, h // 2 - m // 2), fpath, ink, img)
        _fit_text(d, bot, (m, h // 2 + m // 2, w - m, h - m), fpath, ink, img)
    else:
        any_style = str(rng.choice(["de", "fr", "nl", "ro", "x"]))
        style = {"nl_yellow": "nl", "uk_yellow": "uk", "ro": "ro"}.get(kind, any_style)
        m = int(h * 0.13)
        _fit_text(d, registration(rng, style), (x_start, m, w - int(h * 0.08), h - m), fpath, ink, img,
                  stretch=rng.uniform(0.8, 1.1))
    # rim, frame, screws
    rim = int(max(2, h * rng.uniform(0.02, 0.06)))
    d.rectangle([0, 0, w - 1, h - 1], outline=ink if rng.random() < 0.7 else (120, 120, 120), width=rim)
    if rng.random() < 0.5:
        for sx in (w * 0.18, w * 0.82):
            sy = h * (0.5 if kind != "scooter" else 0.12)
            s = h * 0.04
            d.ellipse([sx - s, sy - s, sx + s, sy + s], fill=(150, 150, 150), outline=(80, 80, 80))
    arr = np.asarray(img).astype(np.float32)
    # wear: fading, dirt, gradient lighting
    if rng.random() < 0.7:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = 1 + rng.uniform(-0.25, 0.25) * (xx / w - 0.5) + rng.uniform(-0.25, 0.25) * (yy / h - 0.5)
        arr *= g[..., None]
    if rng.random() < 0.5:
        dirt = np.zeros((h, w), np.float32)
        for _ in range(rng.integers(1, 8)):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(3, h * 0.5)
            cv2.circle(dirt, (int(cx), int(cy)), int(r), float(rng.uniform(0.2, 0.7)), -1)
        dirt = cv2.GaussianBlur(dirt, (0, 0), h * 0.1)
        brown = np.array([90, 75, 55], np.float32)
        arr = arr * (1 - dirt[..., None]) + brown * dirt[..., None]
    arr += rng.normal(0, rng.uniform(1, 8), arr.shape)
    alpha = np.full((h, w), 255, np.uint8)
    rgb = np.clip(arr, 0, 255).astype(np.uint8)
    # dealer frame: a dark border around the plate (outside the labelled plate area)
    out = np.dstack([rgb, alpha])
    if rng.random() < 0.3:
        fw = int(h * rng.uniform(0.05, 0.15))
        col = (rng.integers(0, 60),) * 3 if rng.random() < 0.8 else (200, 200, 200)
        framed = np.zeros((h + 2 * fw, w + 2 * fw, 4), np.uint8)
        framed[..., :3] = col
        framed[..., 3] = 255
        framed[fw:fw + h, fw:fw + w] = out
        return framed, kind + f":frame{fw}"
    return out, kind


def plate_quad(rng: np.random.Generator, w: int, h: int, yaw_max: float = 75, pitch_range=(-10, 40),
               roll_max: float = 12) -> np.ndarray:
    """Projected corners (4x2, unit-free, centred) of a w x h plate turned in 3D and seen by a pinhole."""
    yaw = math.radians(rng.uniform(-yaw_max, yaw_max) * (1 if rng.random() < 0.6 else rng.uniform(0, 0.3)))
    pitch = math.radians(rng.uniform(*pitch_range))
    roll = math.radians(rng.normal(0, roll_max / 2.5))
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]], np.float64)
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    p = pts @ (rz @ rx @ ry).T
    dist = w * rng.uniform(2.0, 10.0)
    z = p[:, 2] + dist
    return np.stack([p[:, 0] / z, p[:, 1] / z], 1) * dist


def paste(canvas: np.ndarray, rgba: np.ndarray, quad: np.ndarray, rng: np.random.Generator,
          light: float = 1.0) -> None:
    """Warp ``rgba`` onto ``canvas`` (uint8 RGB, in place) so its corners land on ``quad`` (4x2 px)."""
    h, w = rgba.shape[:2]
    qw = np.linalg.norm(quad[1] - quad[0])
    qh = np.linalg.norm(quad[3] - quad[0])
    # pre-shrink so the warp never minifies by more than 2x (no aliasing)
    s = min(1.0, 2 * max(qw / w, qh / h, 1e-3))
    if s < 1.0:
        rgba = cv2.resize(rgba, (max(2, int(w * s)), max(2, int(h * s))), interpolation=cv2.INTER_AREA)
        h, w = rgba.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 2
    H, W = canvas.shape[:2]
    x0c, y0c, x1c, y1c = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1c <= x0c or y1c <= y0c:
        return
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    M = cv2.getPerspectiveTransform(src, (quad - [x0c, y0c]).astype(np.float32))
    warped = cv2.warpPerspective(rgba, M, (x1c - x0c, y1c - y0c), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0)).astype(np.float32)
    a = warped[..., 3:4] / 255.0
    region = canvas[y0c:y1c, x0c:x1c].astype(np.float32)
    col = warped[..., :3] * light
    if rng.random() < 0.4:  # soften: the plate seen through the same optics as the photo
        col = cv2.GaussianBlur(col, (0, 0), rng.uniform(0.3, 0.9))
    canvas[y0c:y1c, x0c:x1c] = np.clip(region * (1 - a) + col * a, 0, 255).astype(np.uint8)


# -- distractors: text and shapes that are not plates ------------------------------------------------
WORDS = ["BAKKERIJ", "APOTHEEK", "CAFE", "PIZZA", "KAPPER", "HOTEL", "BAR", "FARMACIE", "MAGAZIN", "OPTIEK",
         "SUPERMARKT", "RESTAURANT", "SALE", "OPEN", "TABAC", "BOULANGERIE", "ZARA", "H&M", "SHOES", "BLOEMEN",
         "Kerkstraat", "Hoofdweg", "Strada Mare", "Rue de la Paix", "Dorpsstraat", "Marktplein", "P", "EXIT",
         "PARKING", "PLASTIC", "PAPIER", "GFT", "REST", "NO PARKING", "STOP", "BUS", "TAXI", "ENTREE", "Uitgang",
         "Bd. Unirii", "Calea Victoriei", "Str. Florilor", "Nr. 12", "24/7", "ATM", "LOTTO", "-50%", "VERHUUR",
         "TE KOOP", "Makelaar", "WC", "Ingang", "DRUKKERIJ", "Snackbar", "Döner", "Bio", "GSM", "Bakery"]


def render_text_sign(rng: np.random.Generator) -> np.ndarray:
    """An RGBA sign: shop lettering, a street-name sign, a bin label or a sticker."""
    kind = rng.choice(["shop", "street", "bin", "sticker", "number"], p=[0.35, 0.25, 0.15, 0.1, 0.15])
    fpath = ANY_FONTS[rng.integers(len(ANY_FONTS))]
    if kind == "number":
        text = str(rng.integers(1, 400)) + (str(rng.choice(list("abc"))) if rng.random() < 0.3 else "")
    else:
        text = str(rng.choice(WORDS))
        if kind == "bin" and rng.random() < 0.5:
            text = f"{rng.integers(100, 99999)}"
    f = font(fpath, 80)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, t, r, b = probe.textbbox((0, 0), text, font=f)
    tw, th = r - left, b - t
    pad = int(th * rng.uniform(0.2, 0.6))
    w, h = tw + 2 * pad, th + 2 * pad
    if kind == "street":
        bg, ink = [((0, 60, 140), (255, 255, 255)), ((255, 255, 255), (0, 60, 140)), ((20, 90, 40), (255, 255, 255)),
                   ((240, 240, 240), (20, 20, 20))][rng.integers(4)]
    elif kind == "shop":
        bg = tuple(int(v) for v in rng.integers(0, 256, 3))
        ink = tuple(255 - v for v in bg) if rng.random() < 0.6 else tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.4:
            bg = None  # letters straight on the wall
    elif kind == "bin":
        bg, ink = [((240, 240, 240), (20, 20, 20)), ((250, 210, 30), (20, 20, 20)),
                   ((30, 110, 40), (255, 255, 255))][rng.integers(3)]
    else:
        bg, ink = [((250, 220, 40), (20, 20, 20)), ((255, 255, 255), (200, 20, 20)),
                   ((255, 255, 255), (20, 20, 20))][rng.integers(3)]
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0) if bg is None else (*bg, 255))
    d = ImageDraw.Draw(img)
    d.text((pad - left, pad - t), text, font=f, fill=(*ink, 255))
    if bg is not None and kind in ("street", "bin") and rng.random() < 0.7:
        d.rectangle([2, 2, w - 3, h - 3], outline=(*ink, 255), width=max(2, h // 20))
    return np.asarray(img)


def shape_distractor(rng: np.random.Generator, size: int) -> np.ndarray:
    """RGBA: a grille, a headlight pair, a railing, a window row, a vent, a bonnet-like smooth patch."""
    kind = rng.choice(["grille", "lights", "railing", "windows", "bonnet", "stripes"])
    w, h = int(size * rng.uniform(1.5, 5)), size
    img = np.zeros((h, w, 4), np.uint8)
    img[..., 3] = 255
    if kind == "grille":
        img[..., :3] = rng.integers(10, 60)
        for y in range(0, h, max(2, h // int(rng.integers(4, 10)))):
            cv2.line(img, (0, y), (w, y), (int(rng.integers(120, 220)),) * 3 + (255,), max(1, h // 25))
    elif kind == "lights":
        img[..., :3] = rng.integers(30, 200, 3)
        for cx in (w * 0.15, w * 0.85):
            cv2.ellipse(img, (int(cx), h // 2), (int(w * 0.12), int(h * 0.3)), 0, 0, 360, (250, 250, 235, 255), -1)
    elif kind == "railing":
        img[..., 3] = 0
        col = (int(rng.integers(150, 220)), int(rng.integers(0, 50)), int(rng.integers(0, 50)), 255)
        if rng.random() < 0.4:
            col = (int(rng.integers(20, 80)),) * 3 + (255,)
        step = max(3, w // int(rng.integers(6, 20)))
        for x in range(0, w, step):
            cv2.line(img, (x, 0), (x, h), col, max(1, step // 4))
        cv2.line(img, (0, 2), (w, 2), col, max(2, h // 12))
        cv2.line(img, (0, h - 3), (w, h - 3), col, max(2, h // 12))
    elif kind == "windows":
        img[..., :3] = rng.integers(80, 220, 3)
        n = int(rng.integers(2, 6))
        for i in range(n):
            x0 = int(w * (i + 0.15) / n)
            cv2.rectangle(img, (x0, int(h * 0.2)), (x0 + int(w * 0.7 / n), int(h * 0.8)),
                          (int(rng.integers(10, 90)),) * 3 + (255,), -1)
    elif kind == "bonnet":
        base = rng.integers(20, 240, 3).astype(np.float32)
        yy = np.linspace(0, 1, h)[:, None, None]
        img[..., :3] = np.clip(base * (0.6 + 0.6 * yy) + 40 * np.exp(-((yy - 0.3) ** 2) / 0.01), 0, 255)
    else:
        c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        step = max(2, w // int(rng.integers(3, 12)))
        for x in range(0, w, step):
            img[:, x:x + step // 2, :3] = c1
            img[:, x + step // 2:x + step, :3] = c2
    return img


def background(rng: np.random.Generator, size: int = 640, photos: list[np.ndarray] | None = None) -> np.ndarray:
    """A plate-free background: a procedural street-ish scene (facade, paving, cobbles) or a photo."""
    if photos and rng.random() < 0.3:
        p = photos[rng.integers(len(photos))]
        s = size / min(p.shape[:2]) * rng.uniform(1.0, 1.6)
        p = cv2.resize(p, (int(p.shape[1] * s) + 1, int(p.shape[0] * s) + 1), interpolation=cv2.INTER_AREA)
        y, x = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        return p[y:y + size, x:x + size].copy()
    img = np.zeros((size, size, 3), np.float32)
    horizon = int(size * rng.uniform(0.2, 0.7))
    wall = rng.integers(60, 230, 3).astype(np.float32)
    img[:horizon] = wall
    if rng.random() < 0.6:  # bricks
        bh = int(rng.integers(6, 20))
        for y in range(0, horizon, bh):
            cv2.line(img, (0, y), (size, y), tuple(float(v) * 0.7 for v in wall), 1)
            off = (y // bh % 2) * bh
            for x in range(off, size, 2 * bh + bh):
                cv2.line(img, (x, y), (x, y + bh), tuple(float(v) * 0.7 for v in wall), 1)
    for _ in range(rng.integers(0, 6)):  # windows and doors
        x0, y0 = int(rng.integers(0, size)), int(rng.integers(0, max(1, horizon - 20)))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 160))),
                      tuple(float(v) for v in rng.integers(0, 120, 3)), -1)
    ground = rng.integers(50, 180, 3).astype(np.float32)
    img[horizon:] = ground
    kind = rng.integers(3)
    if kind == 0:  # cobblestones
        s = int(rng.integers(8, 30))
        for y in range(horizon, size, s):
            for x in range(-(y // s % 2) * s // 2, size, s):
                c = ground * rng.uniform(0.6, 1.2)
                cv2.ellipse(img, (x + s // 2, y + s // 2), (s // 2 - 1, s // 2 - 2), 0, 0, 360,
                            tuple(float(v) for v in c), -1)
    elif kind == 1:  # paving tiles
        s = int(rng.integers(15, 60))
        for y in range(horizon, size, s):
            cv2.line(img, (0, y), (size, y), tuple(float(v) * 0.6 for v in ground), 2)
        for x in range(0, size, s):
            cv2.line(img, (x, horizon), (x, size), tuple(float(v) * 0.6 for v in ground), 2)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), rng.uniform(1, 6))
    img += noise[..., None] * rng.uniform(5, 25)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
