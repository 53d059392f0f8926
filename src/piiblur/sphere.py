"""Views of the sphere: equirectangular panoramas seen through undistorted perspective views.

A panorama maps longitude to x and latitude to y; away from the horizon it
stretches everything sideways, and at the left/right seam it cuts objects in
two. Here the sphere is looked at through gnomonic (pinhole) views, each a
small undistorted photo at the panorama's own pixel density at the equator,
which together cover the sphere with overlap (``VIEW_SETS``). Detections in a
view are mapped back as the projected outline of their box, de-duplicated on
the sphere, and kept with their place (yaw, pitch, angular size).

Blurring happens on the sphere too: for each detection a view centred on it
is rendered, blurred there exactly as in a flat photo, and projected back
into the panorama's pixels, so the mask follows the curved outline, wraps
across the seam (the Gaussian takes its neighbours from the other edge), and
widens with the projection near the poles.

Angles: yaw (longitude) is 0 at the panorama's centre column and grows to the
right; pitch (latitude) is +90 at the top row. Directions are unit vectors
(x right, y up, z forward at yaw 0).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from piiblur import blur as planar_blur
from piiblur.detections import CLASSES, Detections
from piiblur.detectors import Detector

MIN_FULL_WIDTH = 2000  # a 2:1 image at least this wide, without GPano, is taken as a full sphere
OUTLINE_STEPS = 6  # points per box side when a box is projected back to the panorama
BLUR_VIEW_MAX = 1400  # largest side of the view a detection is blurred in


# -- geometry of the panorama ------------------------------------------------------------------
@dataclass(frozen=True)
class Equirect:
    """Where an image sits on the sphere: a full 360x180 panorama or a GPano crop of one."""

    width: int  # image pixels
    height: int
    full_width: int  # the whole sphere's pixels at the same scale
    full_height: int
    left: int = 0  # the image's top-left corner within the whole sphere
    top: int = 0

    @property
    def wraps(self) -> bool:
        """True when the image covers all 360 degrees of yaw, so its left and right edges meet."""
        return self.width >= self.full_width

    @property
    def focal(self) -> float:
        """Focal length (pixels) of a view with the panorama's own density at the equator."""
        return self.full_width / (2 * math.pi)

    def to_pixels(self, yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = (np.asarray(yaw) / 360.0 + 0.5) * self.full_width - self.left
        y = (0.5 - np.asarray(pitch) / 180.0) * self.full_height - self.top
        return x, y

    def to_angles(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        yaw = ((np.asarray(x) + self.left) / self.full_width - 0.5) * 360.0
        pitch = (0.5 - (np.asarray(y) + self.top) / self.full_height) * 180.0
        return yaw, pitch

    def covers(self, yaw: float, pitch: float, margin: float) -> bool:
        """True when a direction is within ``margin`` degrees of the image's part of the sphere."""
        if self.wraps and self.height >= self.full_height:
            return True
        (y0, p0), (y1, p1) = (np.array(v).item() for v in self.to_angles(0, 0)), (
            np.array(v).item() for v in self.to_angles(self.width, self.height)
        )
        if not (p1 - margin <= pitch <= p0 + margin):
            return False
        if self.wraps:
            return True
        centre, half = (y0 + y1) / 2, (y1 - y0) / 2
        return abs((yaw - centre + 180) % 360 - 180) <= half + margin / max(math.cos(math.radians(pitch)), 0.05)


_GPANO = re.compile(rb"GPano:(\w+)\s*(?:=\s*\"([^\"]*)\"|>\s*([^<\s]*)\s*<)")


def gpano(data: bytes) -> dict[str, str]:
    """The XMP GPano properties in a file's bytes (attribute or element form)."""
    found: dict[str, str] = {}
    head = data[: 4 << 20]
    for name, attr, elem in _GPANO.findall(head):
        value = (attr or elem).decode("utf-8", "replace").strip()
        if value:
            found.setdefault(name.decode(), value)
    return found


GPANO_SLACK = 1.0  # pixels a GPano crop may overhang its full panorama (rounding in the writers)
MAX_SPHERE_SHARE = 16  # a GPano crop must span at least 1/16 of the full panorama's width and height
MAX_SPHERE_WIDTH = 1 << 15  # and the full sphere, at the stored pixels' scale, at most this wide


def equirect_for(width: int, height: int, data: bytes, projection: str = "auto",
                 notes: list[str] | None = None) -> Equirect | None:
    """The sphere geometry of an image, or None to treat it as a flat photo.

    ``auto``: GPano ``ProjectionType=equirectangular`` decides (with its crop, if
    any); without GPano a 2:1 image at least ``MIN_FULL_WIDTH`` wide is a full
    sphere. ``equirectangular`` forces a sphere (GPano crop still honoured);
    ``planar`` never. GPano that makes no sense (sizes that are not positive
    finite numbers, a crop beyond the full panorama or a tiny share of it, a
    crop whose shape is not the image's) is ignored, with a line in ``notes``:
    the image's own pixels decide then, a 2:1 image being a full sphere.
    """
    if projection == "planar":
        return None
    tags = gpano(data)
    if tags.get("ProjectionType", "").lower() != "equirectangular":
        return _by_pixels(width, height, projection, claimed=False)
    geo, why = _gpano_geometry(width, height, tags)
    if geo is not None:
        return geo
    geo = _by_pixels(width, height, projection, claimed=True)
    if notes is not None:
        taken = "a flat photo" if geo is None else (
            "a full sphere, from its 2:1 pixels" if width == 2 * height else "a 360-degree band around the horizon")
        notes.append(f"GPano ignored ({why}); the image is taken as {taken}")
    return geo


def _by_pixels(width: int, height: int, projection: str, claimed: bool) -> Equirect | None:
    """The geometry the pixels alone suggest (``claimed``: the file says it is a panorama)."""
    if width == 2 * height and (claimed or projection == "equirectangular" or width >= MIN_FULL_WIDTH):
        return Equirect(width, height, width, height)
    if projection == "equirectangular":  # taken as 360 degrees wide, centred on the horizon
        full_h = max(height, width // 2)
        return Equirect(width, height, width, full_h, 0, (full_h - height) // 2)
    return None


def _number(tags: dict[str, str], name: str, default: float) -> float:
    text = tags.get(name)
    try:
        value = float(default if text is None else text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name}={text!r} is not a finite number")
    return value


def _gpano_geometry(width: int, height: int, tags: dict[str, str]) -> tuple[Equirect | None, str]:
    """(the geometry GPano describes for an image of this size, "") or (None, why it makes no sense)."""
    try:
        full_w = _number(tags, "FullPanoWidthPixels", width)
        full_h = _number(tags, "FullPanoHeightPixels", full_w / 2)
        crop_w = _number(tags, "CroppedAreaImageWidthPixels", full_w)
        crop_h = _number(tags, "CroppedAreaImageHeightPixels", full_h)
        left = _number(tags, "CroppedAreaLeftPixels", 0)
        top = _number(tags, "CroppedAreaTopPixels", 0)
    except ValueError as exc:
        return None, str(exc)
    why = _gpano_nonsense(width, height, (full_w, full_h, crop_w, crop_h, left, top))
    if why:
        return None, why
    # GPano may describe the crop at another resolution than the stored pixels
    sx, sy = width / crop_w, height / crop_h
    return Equirect(width, height, round(full_w * sx), round(full_h * sy), round(left * sx), round(top * sy)), ""


def _gpano_nonsense(width: int, height: int, sizes: tuple[float, ...]) -> str:
    """Why GPano's full size and crop cannot describe an image of ``width`` x ``height``, or ""."""
    full_w, full_h, crop_w, crop_h, left, top = sizes
    if min(full_w, full_h, crop_w, crop_h) <= 0:
        return f"sizes must be positive: full {full_w:g}x{full_h:g}, crop {crop_w:g}x{crop_h:g}"
    if left < 0 or top < 0 or left >= full_w or crop_w > full_w + GPANO_SLACK or top + crop_h > full_h + GPANO_SLACK:
        return f"crop {crop_w:g}x{crop_h:g} at ({left:g}, {top:g}) is beyond the full panorama {full_w:g}x{full_h:g}"
    if not 1.8 <= full_w / full_h <= 2.2:
        return f"full panorama {full_w:g}x{full_h:g} is not 2:1"
    if full_w > MAX_SPHERE_SHARE * crop_w or full_h > MAX_SPHERE_SHARE * crop_h:
        return f"crop {crop_w:g}x{crop_h:g} is under 1/{MAX_SPHERE_SHARE} of the full panorama {full_w:g}x{full_h:g}"
    if abs(crop_h * width / crop_w - height) > max(2.0, 0.02 * height):
        return f"crop {crop_w:g}x{crop_h:g} does not have the shape of the {width}x{height} image"
    if full_w * width / crop_w > max(MAX_SPHERE_WIDTH, width):
        return f"full panorama would be {full_w * width / crop_w:.0f} px wide at the image's scale"
    return ""


# -- directions and views ----------------------------------------------------------------------
def directions(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    yaw, pitch = np.broadcast_arrays(np.radians(yaw), np.radians(pitch))
    return np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], axis=-1)


def angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    return np.degrees(np.arctan2(x, z)), np.degrees(np.arctan2(y, np.hypot(x, z)))


@dataclass(frozen=True)
class View:
    """A pinhole camera at the sphere's centre."""

    yaw: float
    pitch: float
    width: int
    height: int
    focal: float
    roll: float = 0.0

    @property
    def axes(self) -> np.ndarray:
        """3x3 matrix whose columns are the view's right, up and forward directions."""
        fwd = directions(np.array(self.yaw), np.array(self.pitch))
        yaw = math.radians(self.yaw)
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        up = np.cross(fwd, right)
        c, s = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        right, up = c * right + s * up, -s * right + c * up
        return np.stack([right, up, fwd], axis=1)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Directions through view pixels (u right, v down)."""
        a = (np.asarray(u, np.float64) - self.width / 2) / self.focal
        b = -(np.asarray(v, np.float64) - self.height / 2) / self.focal
        cam = np.stack([a, b, np.ones_like(a)], axis=-1)
        world = cam @ self.axes.T
        return world / np.linalg.norm(world, axis=-1, keepdims=True)

    def project(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """View pixels (u, v) of directions, and whether each is in front of the camera."""
        cam = vectors @ self.axes
        front = cam[..., 2] > 1e-6
        z = np.where(front, cam[..., 2], 1.0)
        return self.width / 2 + self.focal * cam[..., 0] / z, self.height / 2 - self.focal * cam[..., 1] / z, front


def view_of(yaw: float, pitch: float, fov: float, focal: float, roll: float = 0.0, fov_v: float = 0.0) -> View:
    width = max(32, round(2 * focal * math.tan(math.radians(fov) / 2)))
    height = max(32, round(2 * focal * math.tan(math.radians(fov_v or fov) / 2)))
    return View(yaw, pitch, width, height, focal, roll)


MAP_STEP = 8  # view-to-panorama maps are computed on a grid this coarse and interpolated


def render(pixels: np.ndarray, geo: Equirect, view: View, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The view's picture, sampled from the panorama (across the seam when the panorama wraps)."""
    x, y = _view_maps(geo, view)
    return remap(pixels, x, y, geo, interpolation)


def _view_maps(geo: Equirect, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Panorama pixel coordinates of every view pixel (x continuous across the seam)."""
    coarse_x, coarse_y, step = _ring_maps(geo, view.pitch, view.width, view.height, view.focal, view.roll)
    shift = np.float32(view.yaw / 360.0 * geo.full_width)  # every view of a ring is the same map, turned
    if step == 1:
        return coarse_x[: view.height, : view.width] + shift, coarse_y[: view.height, : view.width]
    u = (np.arange(view.width, dtype=np.float32) / step)[None, :].repeat(view.height, 0)
    v = (np.arange(view.height, dtype=np.float32) / step)[:, None].repeat(view.width, 1)
    x = cv2.remap(coarse_x, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    y = cv2.remap(coarse_y, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return x + shift, y


@functools.lru_cache(maxsize=32)
def _ring_maps(geo: Equirect, pitch: float, width: int, height: int, focal: float,
               roll: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The maps of a view at yaw 0, on a coarse grid, or at full resolution where the view holds a
    pole (yaw is singular there and cannot be interpolated)."""
    view = View(0.0, pitch, width, height, focal, roll)
    pu, pv, front = view.project(np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    margin = 2 * MAP_STEP
    near = front & (pu > -margin) & (pu < view.width + margin) & (pv > -margin) & (pv < view.height + margin)
    step = 1 if near.any() else MAP_STEP
    u, v = np.meshgrid(np.arange(0, view.width + step, step) + 0.5, np.arange(0, view.height + step, step) + 0.5)
    x, y = geo.to_pixels(*angles(view.rays(u, v)))
    centre = geo.to_pixels(np.array(0.0), np.array(0.0))[0]
    # continuous across the seam, centred on the view (the pole views wrap in remap anyway)
    x = centre + (x - centre + geo.full_width / 2) % geo.full_width - geo.full_width / 2
    return (x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32), step


def remap(pixels: np.ndarray, x: np.ndarray, y: np.ndarray, geo: Equirect, interpolation: int) -> np.ndarray:
    if geo.wraps:
        x = np.mod(x, geo.width)
    y = np.clip(y, 0, geo.height - 1)
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] > 4:
        raise ValueError("at most 4 channels")
    work = pixels if pixels.dtype in (np.uint8, np.uint16, np.float32) else pixels.astype(np.float32)
    border = cv2.BORDER_WRAP if geo.wraps else cv2.BORDER_CONSTANT
    out = cv2.remap(work, x.astype(np.float32), y.astype(np.float32), interpolation, borderMode=border)
    return out.astype(pixels.dtype, copy=False)


# -- the set of views detection runs on ----------------------------------------------------------
@dataclass(frozen=True)
class Ring:
    pitch: float  # degrees above the horizon of every view in the ring
    count: int  # views around the ring, evenly spaced in yaw
    fov: float  # horizontal field of view of each view, degrees
    fov_v: float = 0.0  # vertical field of view; 0 = same as fov
    density: float = 1.0  # pixels per degree, as a share of the panorama's at the equator
    classes: tuple[str, ...] = CLASSES
    yaw_offset: float = 0.0


def band_ring(top: float, bottom: float, count: int, overlap: float, density: float = 2.0,
              classes: tuple[str, ...] = ("plate",)) -> Ring:
    """A ring of ``count`` views that covers every direction with pitch in [bottom, top] all round.

    The views look at the band's middle pitch; each holds its own share of yaw plus ``overlap / 2``
    degrees of each neighbour's at every pitch of the band, with the fields of view computed for
    that (a view pitched off the horizon sees less of the band at its left and right edges).
    """
    pitch = (top + bottom) / 2
    half = 180.0 / count + overlap / 2
    yaw, pit = np.meshgrid(np.linspace(-half, half, 33), np.linspace(bottom, top, 17))
    cam = directions(yaw, pit) @ View(0.0, pitch, 2, 2, 1.0).axes
    x, y = cam[..., 0] / cam[..., 2], cam[..., 1] / cam[..., 2]
    fov = 2 * math.degrees(math.atan(float(np.abs(x).max())))
    fov_v = 2 * math.degrees(math.atan(float(np.abs(y).max())))
    return Ring(pitch, count, fov, fov_v, density, classes)


# Small plates near the horizon (6-16 px tall in an 8000 px panorama: cars 9-20 m away, seen from a
# camera on a car's roof) score under the threshold at the panorama's density and over it at twice
# that density. So plates are looked for again in a band from 3 degrees above the horizon to 12 below,
# at twice the density, in 12 views 33 degrees wide (3 degrees of overlap: the band is for plates of a
# degree or two; larger ones lie whole in the views at the panorama's density). Its gain and cost are
# measured by benchmarks/plates.py --sets pano and given in the README.
PLATE_BAND = band_ring(3.0, -12.0, 12, 3.0)

VIEW_SETS: dict[str, tuple[Ring, ...]] = {
    # Chosen on benchmarks/panorama.py (see the README). Rings of views at the horizon, at 45 and at
    # 75 degrees up and down, all at the panorama's density at the equator so small faces keep
    # their pixels. Views are 55-64 degrees wide (little perspective stretch at their corners)
    # and neighbours overlap by 8 degrees or more, so a face or plate lies whole in one of them.
    # The rings at 75 degrees reach past the poles; unlike a single view straight up, they show a
    # face near the zenith or nadir upright in one of their views (a view straight up turns each
    # face by its yaw, and the face detector is not rotation-invariant: single pole views found
    # 82% of faces at 65-75 degrees, these rings 93%). Plates are looked for at and below the
    # horizon, and again near it at twice the density (PLATE_BAND, added below). Six coarse views
    # catch objects too large for the overlap (a person right next to the camera).
    "standard": (
        Ring(0, 8, 55, fov_v=64),
        Ring(45, 8, 55, classes=("face",), yaw_offset=22.5),
        Ring(-45, 8, 55, yaw_offset=22.5),
        Ring(75, 5, 60, classes=("face",)),
        Ring(-75, 5, 60, yaw_offset=36),
        Ring(0, 4, 100, density=0.25),
        Ring(90, 1, 100, density=0.25),
        Ring(-90, 1, 100, density=0.25),
    ),
    # Cheaper: above the horizon ring only the coarse views; for surveys where nobody is above
    # the camera.
    "fast": (
        Ring(0, 8, 55, fov_v=64),
        Ring(-45, 8, 55, yaw_offset=22.5),
        Ring(-75, 5, 60, yaw_offset=36),
        Ring(0, 4, 100, density=0.25),
        Ring(90, 1, 100, density=0.25),
    ),
}
# The standard set without the plate band: the views before it, for comparison and for the least time.
VIEW_SETS["standard-noband"] = VIEW_SETS["standard"]
VIEW_SETS["standard"] = (*VIEW_SETS["standard-noband"], PLATE_BAND)


def views_for(geo: Equirect, view_set: str = "standard") -> list[tuple[View, tuple[str, ...]]]:
    """The views (and the classes looked for in each) that cover the image's part of the sphere."""
    chosen: list[tuple[View, tuple[str, ...]]] = []
    for ring in VIEW_SETS[view_set]:
        for i in range(ring.count):
            yaw = (ring.yaw_offset + i * 360.0 / ring.count + 180) % 360 - 180
            if geo.covers(yaw, ring.pitch, ring.fov / 2):
                view = view_of(yaw, ring.pitch, ring.fov, geo.focal * ring.density, fov_v=ring.fov_v)
                chosen.append((view, ring.classes))
    return chosen


# -- detection on the sphere ----------------------------------------------------------------------
def detect_sphere(rgb: np.ndarray, geo: Equirect, detectors: list[Detector], thresholds: dict[str, float],
                  view_set: str = "standard") -> Detections:
    """Detect in every view of the set and map each box back to the panorama."""
    found: list[Detections] = []
    for view, classes in views_for(geo, view_set):
        wanted = [d for d in detectors if d.class_name in classes]
        if not wanted:
            continue
        picture = render(rgb, geo, view)
        # a view is one detector input: it is already at the right scale, so no tile pyramid
        dets = Detections.merge(d.detect(picture, thresholds[d.class_name]) for d in wanted)
        if len(dets):
            found.append(to_sphere(dets, view, geo))
    return deduplicate_on_sphere(Detections.merge(found))


CONFIRM_ZOOM = 2.0  # a doubtful face is looked at again at twice the panorama's density
CONFIRM_CONTEXT = 5.0  # in a view this many times its size


def confirm(rgb: np.ndarray, geo: Equirect, dets: Detections, detectors: list[Detector],
            sure: dict[str, float]) -> Detections:
    """Keep a detection scored under its class's ``sure`` threshold only if a second, closer look agrees.

    The views are searched with a lower threshold so that faces of a few pixels are not lost; each
    such doubtful find is rendered again, centred, at twice the density, and kept when the detector
    finds the same object there with a score of ``sure`` or more. Texture that merely resembles a
    face at a few pixels rarely survives the closer look.
    """
    if not len(dets) or dets.places is None:
        return dets
    by_class = {d.class_name: d for d in detectors}
    keep = np.ones(len(dets), bool)
    for i, (place, cid, score) in enumerate(zip(dets.places, dets.class_ids, dets.scores, strict=True)):
        name = CLASSES[cid]
        if name not in sure or score >= sure[name] or name not in by_class:
            continue
        yaw, pitch, ang_w, ang_h = (float(v) for v in place)
        fov = float(np.clip(CONFIRM_CONTEXT * max(ang_w, ang_h), 3.0, 90.0))
        focal = geo.focal * CONFIRM_ZOOM
        size = 2 * focal * math.tan(math.radians(fov) / 2)
        if size > 640:  # large enough already: no zoom needed, keep the view small
            focal *= 640 / size
        view = view_of(yaw, pitch, fov, focal)
        found = by_class[name].detect(render(rgb, geo, view), sure[name])
        half_w = focal * math.tan(math.radians(ang_w) / 2)
        half_h = focal * math.tan(math.radians(ang_h) / 2)
        cx, cy = view.width / 2, view.height / 2
        near = (np.abs((found.xyxy[:, 0] + found.xyxy[:, 2]) / 2 - cx) < max(half_w, 2.0)) & (
            np.abs((found.xyxy[:, 1] + found.xyxy[:, 3]) / 2 - cy) < max(half_h, 2.0))
        keep[i] = bool(near.any())
    return dets[keep]


def to_sphere(dets: Detections, view: View, geo: Equirect) -> Detections:
    """Boxes in a view as outlines and places on the panorama."""
    outlines, places, boxes = [], [], []
    t = np.linspace(0, 1, OUTLINE_STEPS, endpoint=False)
    for x1, y1, x2, y2 in dets.xyxy:
        u = np.concatenate([x1 + (x2 - x1) * t, np.full_like(t, x2), x2 - (x2 - x1) * t, np.full_like(t, x1)])
        v = np.concatenate([np.full_like(t, y1), y1 + (y2 - y1) * t, np.full_like(t, y2), y2 - (y2 - y1) * t])
        yaw, pitch = angles(view.rays(u, v))
        x, y = geo.to_pixels(yaw, pitch)
        x = _unwrapped(x, geo.full_width)
        outline = np.stack([x, y], axis=1).astype(np.float32)
        outlines.append(outline)
        boxes.append([x.min(), y.min(), x.max(), y.max()])
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
        mid = view.rays(np.array([x1, x2, cx, cx, cx]), np.array([cy, cy, y1, y2, cy]))
        ang_w = math.degrees(math.acos(float(np.clip(mid[0] @ mid[1], -1, 1))))
        ang_h = math.degrees(math.acos(float(np.clip(mid[2] @ mid[3], -1, 1))))
        c_yaw, c_pitch = angles(mid[4])
        places.append([float(c_yaw), float(c_pitch), ang_w, ang_h])
    return Detections(np.array(boxes), dets.scores, dets.class_ids, np.array(places), tuple(outlines))


def _unwrapped(x: np.ndarray, period: float) -> np.ndarray:
    """Make a closed path's x continuous across the seam (steps of over half the width are wraps)."""
    steps = np.diff(x)
    steps = steps - period * np.round(steps / period)
    out = np.concatenate([[x[0]], x[0] + np.cumsum(steps)])
    # keep the centre within the image's width
    return out - period * np.floor(out.mean() / period)


def deduplicate_on_sphere(dets: Detections, iou: float = 0.4, containment: float = 0.75) -> Detections:
    """Non-maximum suppression on the sphere: boxes compared in the tangent plane of the better one."""
    if len(dets) < 2 or dets.places is None:
        return dets
    keep: list[int] = []
    order = np.argsort(-dets.scores, kind="stable")
    vecs = directions(dets.places[:, 0], dets.places[:, 1])
    suppressed = np.zeros(len(dets), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        others = np.flatnonzero(~suppressed & (dets.class_ids == dets.class_ids[i]))
        others = others[others != i]
        if not others.size:
            continue
        view = View(float(dets.places[i, 0]), float(dets.places[i, 1]), 2, 2, 1.0)
        u, v, front = view.project(vecs[others])
        du, dv = np.degrees(np.arctan(u - 1)), np.degrees(np.arctan(1 - v))  # offsets in degrees
        wi, hi = dets.places[i, 2], dets.places[i, 3]
        wo, ho = dets.places[others, 2], dets.places[others, 3]
        ix = np.maximum(0, np.minimum(wi / 2, du + wo / 2) - np.maximum(-wi / 2, du - wo / 2))
        iy = np.maximum(0, np.minimum(hi / 2, dv + ho / 2) - np.maximum(-hi / 2, dv - ho / 2))
        inter = ix * iy
        union = wi * hi + wo * ho - inter
        drop = front & ((inter / np.maximum(union, 1e-9) >= iou) | (inter / np.maximum(wo * ho, 1e-9) >= containment))
        suppressed[others[drop]] = True
    return dets[np.sort(np.array(keep))]


# -- blur on the sphere -------------------------------------------------------------------------
def _blur_view(geo: Equirect, place: np.ndarray) -> View:
    """A view centred on a detection, wide enough for its mask, feather and blur context."""
    yaw, pitch, ang_w, ang_h = (float(v) for v in place)
    fov = float(np.clip(3.0 * max(ang_w, ang_h), 4.0, 150.0))
    focal = geo.focal
    if 2 * focal * math.tan(math.radians(fov) / 2) > BLUR_VIEW_MAX:
        focal = BLUR_VIEW_MAX / (2 * math.tan(math.radians(fov) / 2))
    return view_of(yaw, pitch, fov, focal)


def _box_in_view(view: View, geo: Equirect, outline: np.ndarray) -> np.ndarray:
    yaw, pitch = geo.to_angles(outline[:, 0], outline[:, 1])
    u, v, _ = view.project(directions(yaw, pitch))
    return np.array([[u.min(), v.min(), u.max(), v.max()]])


def _window(view: View, geo: Equirect, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Panorama columns and rows that the view's non-zero alpha can reach (columns may wrap)."""
    rows_any, cols_any = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows_any.size:
        return None
    u0, u1, v0, v1 = cols_any[0], cols_any[-1] + 1, rows_any[0], rows_any[-1] + 1
    n = 24
    t = np.linspace(0, 1, n)
    u = np.concatenate([u0 + (u1 - u0) * t, np.full(n, u1), u1 - (u1 - u0) * t, np.full(n, u0)])
    v = np.concatenate([np.full(n, v0), v0 + (v1 - v0) * t, np.full(n, v1), v1 - (v1 - v0) * t])
    yaw, pitch = angles(view.rays(u, v))
    x, y = geo.to_pixels(yaw, pitch)
    y_lo, y_hi = float(y.min()), float(y.max())
    pole_u, pole_v, pole_front = view.project(np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))
    inside = pole_front & (pole_u >= u0) & (pole_u <= u1) & (pole_v >= v0) & (pole_v <= v1)
    if inside[0]:
        y_lo = -geo.top  # north pole in the mask: every column, up to the top
    if inside[1]:
        y_hi = geo.full_height - geo.top
    if inside.any():
        x_lo, x_hi = -geo.left, geo.full_width - geo.left
    else:
        xs = _unwrapped(x, geo.full_width)
        x_lo, x_hi = float(xs.min()), float(xs.max())
    rows = np.arange(max(0, math.floor(y_lo) - 1), min(geo.height, math.ceil(y_hi) + 2))
    cols = np.arange(math.floor(x_lo) - 1, math.ceil(x_hi) + 2)
    # never more than once round a whole panorama; never outside a cropped one
    cols = cols[: geo.width] if geo.wraps else cols[(cols >= 0) & (cols < geo.width)]
    if not rows.size or not cols.size:
        return None
    return cols, rows


def _reproject(view: View, geo: Equirect, cols: np.ndarray, rows: np.ndarray, image: np.ndarray,
               interpolation: int) -> np.ndarray:
    """Sample a view-space image at the panorama pixels (cols x rows)."""
    yaw, pitch = geo.to_angles(cols[None, :] + 0.5, rows[:, None] + 0.5)
    u, v, front = view.project(directions(yaw, pitch))
    u = np.where(front, u - 0.5, -10.0).astype(np.float32)
    v = np.where(front, v - 0.5, -10.0).astype(np.float32)
    return cv2.remap(image, u, v, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _each_region(dets: Detections, geo: Equirect, strength: float) -> Iterable[tuple]:
    if not len(dets):
        return
    assert dets.places is not None and dets.outlines is not None
    for place, outline, cid in zip(dets.places, dets.outlines, dets.class_ids, strict=True):
        view = _blur_view(geo, place)
        box = _box_in_view(view, geo, outline)
        region = planar_blur.region_for(box[0], int(cid), (view.height, view.width), strength)
        if region is None:
            continue
        alpha = np.zeros((view.height, view.width), np.float32)
        rh, rw = region.alpha.shape
        alpha[region.y0 : region.y0 + rh, region.x0 : region.x0 + rw] = region.alpha
        window = _window(view, geo, alpha)
        if window is None:
            continue
        yield view, region.sigma, alpha, window


def blur(pixels: np.ndarray, dets: Detections, geo: Equirect, strength: float = 1.0) -> np.ndarray:
    """Blur every detection on the sphere; pixels outside every mask are left as they are."""
    planar_blur.checked_strength(strength)
    out = pixels.copy()
    top = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else None
    for view, sigma, alpha, (cols, rows) in _each_region(dets, geo, strength):
        blurred = planar_blur.gaussian(render(out, geo, view), sigma)
        a = _reproject(view, geo, cols, rows, alpha, cv2.INTER_LINEAR)
        if not (a > 0).any():
            continue
        b = _reproject(view, geo, cols, rows, blurred, cv2.INTER_LINEAR).astype(np.float32)
        cidx = np.mod(cols, geo.width) if geo.wraps else cols
        win = out[np.ix_(rows, cidx)].astype(np.float32)
        aa = a if win.ndim == 2 else a[..., None]
        mixed = win * (1 - aa) + b * aa
        if top is not None:
            mixed = np.clip(np.rint(mixed), 0, top)
        keep = aa > 1.0 / 512
        out[np.ix_(rows, cidx)] = np.where(keep, mixed, win).astype(pixels.dtype)
    return out


def protected(dets: Detections, geo: Equirect, strength: float = 1.0) -> np.ndarray:
    """Boolean mask of the panorama pixels that ``blur`` hides (alpha of one half or more)."""
    planar_blur.checked_strength(strength)
    mask = np.zeros((geo.height, geo.width), bool)
    for view, _sigma, alpha, (cols, rows) in _each_region(dets, geo, strength):
        a = _reproject(view, geo, cols, rows, alpha, cv2.INTER_LINEAR)
        cidx = np.mod(cols, geo.width) if geo.wraps else cols
        mask[np.ix_(rows, cidx)] |= a >= 0.5
    return mask
