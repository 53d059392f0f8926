"""Whether an image is a panorama: its XMP GPano, else its pixels (a 2:1 image wide enough)."""

from __future__ import annotations

import math
import re

from piiblur.projections.sphere_geometry import Equirect

MIN_FULL_WIDTH = 2000  # a 2:1 image at least this wide, without GPano, is taken as a full sphere

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
                 notes: list[str] | None = None, tags: dict[str, str] | None = None) -> Equirect | None:
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
    tags = gpano(data) if tags is None else tags  # ``tags``: the file's GPano, when the caller has read it
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
