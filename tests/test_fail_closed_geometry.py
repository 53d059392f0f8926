"""Fail closed on geometry: the tile pyramid and the views of the sphere for every image size,
hostile GPano, and blur strengths that would leave a face recognisable or abort the batch."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from helpers import FACE_BOX, detail, sky_and_ground
from PIL import Image

from piiblur import sphere
from piiblur import synthetic as syn
from piiblur.projections import planar

MAX_SIDE = 20000


# -- the tile pyramid ----------------------------------------------------------------------------------
def _check_spans(spans: list[tuple[int, int]], length: int, tile: int) -> None:
    """Spans lie within [0, length), are at most a tile, cover every pixel, and overlap by OVERLAP."""
    assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == length
    for (start, size), (nxt, _) in itertools.pairwise(spans):
        assert nxt > start
        assert start + size - nxt >= planar.OVERLAP - 1  # neighbours share the overlap (up to rounding)
    assert all(s >= 0 and 1 <= n <= tile and s + n <= length for s, n in spans)


def _check_pyramid(width: int, height: int, tile: int) -> None:
    scales = planar.pyramid_scales(width, height, tile)
    longest = max(width, height)
    assert 1.0 in scales  # the full resolution is always searched
    assert len(scales) <= 3 + math.ceil(math.log(max(longest / tile, 1.0), planar.PYRAMID_STEP))
    assert all(math.isfinite(s) and s > 0 for s in scales)
    assert all(a > b and a / b <= planar.PYRAMID_STEP * (1 + 1e-9) for a, b in itertools.pairwise(scales))
    assert max(planar.level_size(width, height, scales[-1])) <= tile  # the last level is one tile
    for scale in scales:
        sw, sh = planar.level_size(width, height, scale)
        _check_spans(planar._spans(sw, tile), sw, tile)
        _check_spans(planar._spans(sh, tile), sh, tile)


@pytest.mark.parametrize("tile", [1536, 640])
def test_the_tile_pyramid_of_every_long_side_up_to_20000_px_covers_the_image(tile: int):
    """852 long sides from 1537 to 20000 px once looped forever (longest * (tile / longest) > tile)."""
    rng = np.random.default_rng(tile)
    for longest in range(1, MAX_SIDE + 1):
        short = int(rng.integers(1, longest + 1))
        _check_pyramid(longest, short, tile)


@pytest.mark.parametrize("size", [(5616, 3744), (3744, 5616), (2200, 1650), (20000, 1), (1, 20000), (1, 1)])
def test_tiles_of_common_and_extreme_sizes_cover_every_pixel(size: tuple[int, int]):
    width, height = size
    tile = 1536
    by_level: dict[float, np.ndarray] = {}
    for t in planar.tiles(width, height, tile):
        sw, sh = planar.level_size(width, height, t.scale)
        covered = by_level.setdefault(t.scale, np.zeros((sh, sw), bool))
        assert t.x >= 0 and t.y >= 0 and t.x + t.width <= sw and t.y + t.height <= sh
        assert t.width <= tile and t.height <= tile
        covered[t.y : t.y + t.height, t.x : t.x + t.width] = True
    assert by_level and all(c.all() for c in by_level.values())


def test_a_tile_no_larger_than_the_overlap_is_refused():
    with pytest.raises(ValueError):
        planar.pyramid_scales(100, 100, planar.OVERLAP)
    with pytest.raises(ValueError):
        planar.pyramid_scales(0, 100, 1536)


# -- the views of the sphere ------------------------------------------------------------------------------
def _views_see_every_pixel(geo: sphere.Equirect, view_set: str = "standard") -> None:
    """Every view is of a bounded size, and every pixel of the image (on a grid, edges included) lies
    inside the rows of a view in which faces are looked for."""
    searches = [one for one in sphere.views_for(geo, view_set) if "face" in one.classes]
    assert 0 < len(searches) <= sum(r.count for r in sphere.VIEW_SETS[view_set])
    for one in searches:
        view = one.view
        assert 32 <= view.width <= max(32, geo.full_width // 3) and 32 <= view.height <= max(32, geo.full_width // 3)
    xs = np.unique(np.linspace(0, geo.width - 1, 13).round()) + 0.5
    ys = np.unique(np.linspace(0, geo.height - 1, 13).round()) + 0.5
    yaw, pitch = geo.to_angles(xs[None, :], ys[:, None])
    rays = sphere.directions(yaw, pitch).reshape(-1, 3)
    seen = np.zeros(len(rays), bool)
    for one in searches:
        top, bottom = one.rows("face")
        u, v, front = one.view.project(rays)
        seen |= front & (u >= 0) & (u <= one.view.width) & (v >= top) & (v <= bottom)
    assert seen.all(), f"{int((~seen).sum())} pixels of {geo} in no view"


def test_the_views_of_every_panorama_size_up_to_20000_px_see_every_pixel():
    rng = np.random.default_rng(7)
    widths = np.unique(np.concatenate([np.arange(1, 64), rng.integers(64, MAX_SIDE + 1, 150), [MAX_SIDE]]))
    for width in widths.tolist():
        for height in {max(1, width // 2), int(rng.integers(1, MAX_SIDE + 1))}:
            geo = sphere.equirect_for(width, height, b"", "equirectangular")
            assert geo is not None
            _views_see_every_pixel(geo)
            if height == max(1, width // 2):
                _views_see_every_pixel(geo, "fast")


def test_the_views_of_random_gpano_crops_see_every_pixel():
    rng = np.random.default_rng(11)
    for _ in range(200):
        full_w = int(rng.integers(200, 30000))
        full_h = full_w // 2
        crop_w = int(rng.integers(full_w // 16 + 1, full_w + 1))
        crop_h = int(rng.integers(full_h // 16 + 1, full_h + 1))
        left, top = int(rng.integers(0, full_w)), int(rng.integers(0, full_h - crop_h + 1))
        scale = float(rng.uniform(0.3, 1.0))
        width, height = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
        data = _gpano(ProjectionType="equirectangular", FullPanoWidthPixels=full_w, FullPanoHeightPixels=full_h,
                      CroppedAreaImageWidthPixels=crop_w, CroppedAreaImageHeightPixels=crop_h,
                      CroppedAreaLeftPixels=left, CroppedAreaTopPixels=top)
        notes: list[str] = []
        geo = sphere.equirect_for(width, height, data, notes=notes)
        if geo is None:  # a tiny stored image whose rounded shape is not the crop's: noted, a photo
            assert notes and abs(crop_h * width / crop_w - height) > 2
            continue
        assert not notes and geo.full_width == pytest.approx(full_w * width / crop_w, abs=1)
        _views_see_every_pixel(geo)


# -- hostile GPano ----------------------------------------------------------------------------------------
def _gpano(**tags: object) -> bytes:
    attrs = " ".join(f'GPano:{k}="{v}"' for k, v in tags.items())
    return f'<x:xmpmeta><rdf:Description GPano:ProjectionType="equirectangular" {attrs}/></x:xmpmeta>'.encode()


HOSTILE = {
    "zero": {"FullPanoWidthPixels": 0, "FullPanoHeightPixels": 0},
    "zero crop": {"CroppedAreaImageWidthPixels": 0, "CroppedAreaImageHeightPixels": 0},
    "negative": {"FullPanoWidthPixels": -4000, "FullPanoHeightPixels": -2000},
    "negative offset": {"FullPanoWidthPixels": 4000, "FullPanoHeightPixels": 2000, "CroppedAreaLeftPixels": -100},
    "crop beyond": {"FullPanoWidthPixels": 4000, "FullPanoHeightPixels": 2000, "CroppedAreaImageWidthPixels": 4000,
                    "CroppedAreaImageHeightPixels": 2000, "CroppedAreaLeftPixels": 3000, "CroppedAreaTopPixels": 1500},
    "huge with crop": {"FullPanoWidthPixels": 2e9, "FullPanoHeightPixels": 1e9, "CroppedAreaImageWidthPixels": 4000,
                       "CroppedAreaImageHeightPixels": 2000},
    "inf": {"FullPanoWidthPixels": "inf"},
    "nan": {"FullPanoHeightPixels": "nan"},
    "-inf crop": {"CroppedAreaImageWidthPixels": "-inf"},
    "not a number": {"FullPanoWidthPixels": "wide"},
    "not 2:1": {"FullPanoWidthPixels": 4000, "FullPanoHeightPixels": 4000, "CroppedAreaImageHeightPixels": 2000},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("size", [(4000, 2000), (1000, 500), (4000, 3000)])
def test_gpano_that_makes_no_sense_is_noted_and_the_pixels_decide(name: str, size: tuple[int, int]):
    width, height = size
    notes: list[str] = []
    geo = sphere.equirect_for(width, height, _gpano(**HOSTILE[name]), notes=notes)
    assert len(notes) == 1 and notes[0].startswith("GPano ignored")
    if width == 2 * height:  # a 2:1 image is a whole sphere
        assert geo == sphere.Equirect(width, height, width, height)
        _views_see_every_pixel(geo)
    else:  # anything else a photo
        assert geo is None and "flat photo" in notes[0]


def test_a_huge_full_size_without_a_crop_is_the_whole_sphere_at_the_images_scale():
    notes: list[str] = []
    geo = sphere.equirect_for(4000, 2000, _gpano(FullPanoWidthPixels=2e9), notes=notes)
    assert geo == sphere.Equirect(4000, 2000, 4000, 2000) and not notes


def _panorama_with_a_face(portrait: np.ndarray, width: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """A sky-to-ground 2:1 panorama with the example's face at the horizon; and the face's footprint."""
    geo = sphere.Equirect(width, width // 2, width, width // 2)
    pano = sky_and_ground(geo.height, geo.width)
    x1, y1, x2, y2 = FACE_BOX
    crop = syn.cut(portrait, (float(x1), float(y1), float(x2), float(y2)), 0.4 * (x2 - x1), 0.4 * (y2 - y1))
    placed = syn.place(pano, geo, crop, 30.0, 0.0, 64)
    return pano, placed.footprint


@pytest.mark.parametrize("name", ["zero", "negative", "crop beyond", "huge with crop", "inf"])
def test_a_panorama_with_hostile_gpano_still_has_its_face_blurred(blurrer, portrait: np.ndarray, name: str):
    pano, face = _panorama_with_a_face(portrait)
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{_gpano(**HOSTILE[name]).decode()}</x:xmpmeta>'.encode()
    buffer = io.BytesIO()
    Image.fromarray(pano).save(buffer, "JPEG", quality=95, xmp=xmp)
    result, encoded = blurrer.process_bytes(buffer.getvalue(), "pano.jpg")
    assert result.status == "blurred" and result.count("face") >= 1, (result.status, result.reason)
    assert result.projection == "equirectangular"
    assert any(n.startswith("GPano ignored") for n in result.notes)
    out = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    rows, cols = np.flatnonzero(face.any(axis=1)), np.flatnonzero(face.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    assert detail(out, box) < 0.2 * detail(pano, box)


def _flat_two_to_one(portrait: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A flat 2048x1024 photo (a 2:1 frame, no GPano) with an 80 px face near its top and its bottom."""
    rng = np.random.default_rng(3)
    photo = np.clip(rng.normal(120, 20, (1024, 2048, 3)), 0, 255).astype(np.uint8)
    photo[:, :1024] //= 2  # a darker left half: the edges do not meet
    face = np.asarray(Image.fromarray(portrait[40:200, 160:290]).resize((65, 80)))
    boxes = []
    for x, y in ((300, 40), (1500, 900)):  # 65 and 70 degrees from the "horizon"
        photo[y : y + 80, x : x + 65] = face
        boxes.append((x, y, x + 65, y + 80))
    return photo, boxes


@pytest.mark.parametrize("projection", ["auto", "equirectangular"])
def test_a_flat_two_to_one_photo_without_gpano_is_searched_flat_too(blurrer, portrait: np.ndarray,
                                                                    projection: str):
    """Taken as a panorama by its shape alone, a flat 2:1 photo's faces near its top and bottom are
    squeezed in the views of the sphere, which miss them. Its edges do not meet as a panorama's do,
    so it is searched as a flat photo too; told it is a panorama, pii-blur searches the sphere only."""
    from piiblur.pipeline import Blurrer, Settings
    from piiblur.settings import Projection

    photo, boxes = _flat_two_to_one(portrait)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=95)
    searcher = blurrer if projection == "auto" else Blurrer(Settings(projection=Projection(projection)))
    result, encoded = searcher.process_bytes(buffer.getvalue(), "wide.jpg")
    assert result.projection == "equirectangular"
    out = photo if encoded is None else np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    hidden = [detail(out, box) < 0.2 * detail(photo, box) for box in boxes]
    assert hidden == ([True, True] if projection == "auto" else [False, False])


def test_a_panoramas_edges_meet_and_a_flat_photos_do_not(portrait: np.ndarray) -> None:
    from piiblur.projections.equirect import edges_meet

    photo, _ = _flat_two_to_one(portrait)
    pano, _ = _panorama_with_a_face(portrait)
    assert edges_meet(pano) and edges_meet(np.roll(pano, 700, axis=1))
    darker_right = pano.copy()
    darker_right[:, 1000:] //= 2
    assert not edges_meet(photo) and not edges_meet(darker_right)


# -- blur strength ----------------------------------------------------------------------------------------
BAD_STRENGTHS = ["0", "-1", "nan", "-inf", "inf", "1e9", "0.3", "10.5"]


@pytest.mark.parametrize("text", [*BAD_STRENGTHS, "strong"])
def test_the_cli_refuses_a_strength_that_leaves_faces_recognisable_or_aborts(text: str, tmp_path, capsys):
    from piiblur.cli import blur_parser

    with pytest.raises(SystemExit) as exc:
        blur_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "--strength", text])
    assert exc.value.code == 2 and "--strength" in capsys.readouterr().err


def test_the_cli_takes_the_strengths_from_the_minimum_to_the_maximum(tmp_path):
    from piiblur.blur import MAX_STRENGTH, MIN_STRENGTH
    from piiblur.cli import blur_parser

    for value in (MIN_STRENGTH, 1.0, MAX_STRENGTH):
        args = blur_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "--strength", str(value)])
        assert args.strength == value


@pytest.mark.parametrize("text", BAD_STRENGTHS)
def test_the_library_refuses_a_bad_strength_even_with_nothing_to_blur(text: str):
    from piiblur import blur
    from piiblur.detections import Detections
    from piiblur.pipeline import Settings

    value = float(text)
    picture = np.zeros((20, 40, 3), np.uint8)
    geo = sphere.Equirect(40, 20, 40, 20)
    one, none = Detections([[5, 5, 15, 15]], [0.9], [0]), Detections.empty()
    with pytest.raises(ValueError):
        Settings(strength=value)
    for dets in (one, none):
        with pytest.raises(ValueError):
            blur.blur(picture, dets, value)
        with pytest.raises(ValueError):
            blur.protected(dets, (20, 40), value)
        with pytest.raises(ValueError):
            sphere.blur(picture, dets, geo, value)
        with pytest.raises(ValueError):
            sphere.protected(dets, geo, value)


def test_the_weakest_strength_hides_a_face_and_the_strongest_finishes(portrait: np.ndarray):
    """At the minimum under one cycle of detail is left across the face; at the maximum a face filling
    most of a 1500x1000 picture is blurred at once (a sigma of thousands of pixels once never ended)."""
    from piiblur import blur
    from piiblur.detections import Detections

    face = Detections([list(FACE_BOX)], [0.9], [0])
    x1, y1, x2, y2 = FACE_BOX
    inner = (x1 + 10, y1 + 10, x2 - 10, y2 - 10)
    for strength in (blur.MIN_STRENGTH, blur.MAX_STRENGTH):
        assert detail(blur.blur(portrait, face, strength), inner) < 0.01 * detail(portrait, inner)
    noise = np.random.default_rng(3).integers(0, 256, (1000, 1500, 3), dtype=np.uint8)
    big = Detections([[400, 250, 1100, 750]], [0.9], [0])
    out = blur.blur(noise, big, blur.MAX_STRENGTH)
    assert detail(out, (500, 300, 1000, 700)) < 0.001 * detail(noise, (500, 300, 1000, 700))
    region = blur.region_for(big.xyxy[0], 0, noise.shape[:2], blur.MAX_STRENGTH)
    assert region is not None and region.sigma > 1000
    untouched = np.ones(noise.shape[:2], bool)
    untouched[region.y0 : region.y0 + region.alpha.shape[0], region.x0 : region.x0 + region.alpha.shape[1]] = False
    assert untouched.any() and (out[untouched] == noise[untouched]).all()


@pytest.mark.parametrize(("size", "expected"), [
    ((1280, 720), [1.0, 0.5]),  # a dashcam frame: a close plate is also looked for at half size
    ((416, 416), [2.0, 1.0]),  # small: seen larger, never smaller than the nets' 640 px
    ((1000, 800), [2.0, 1.0]),  # half would be under 640 px
    ((4000, 3000), [1.0, 1536 / 4000, 768 / 4000]),  # the one-tile level, and half of it
])
def test_the_pyramid_also_sees_the_whole_image_at_half_the_one_tile_size(size, expected):
    assert planar.pyramid_scales(*size, 1536) == pytest.approx(expected)


def test_a_box_cut_by_an_inner_tile_edge_gives_way_to_the_whole_object_found_at_another_level():
    """A plate straddling the edge between two tiles, found in one of them cut (score 0.8) and whole at
    the coarser level (0.5): the whole box is kept, so the blur covers all of the plate."""
    from piiblur.detections import Detections

    tile = planar.Tile(1.0, 0, 0, 1536, 1536)
    part = Detections.of_class(np.array([[1400.0, 700.0, 1536.0, 760.0]]), np.array([0.8]), "plate")
    cut = planar.cut_by_tile_edge(part, tile, 3000, 2000)
    assert cut.tolist() == [True]
    # the same box at the right edge of the image is whole: nothing lies beyond it
    assert not planar.cut_by_tile_edge(part, tile, 1536, 2000).any()
    whole = Detections.of_class(np.array([[1400.0, 700.0, 1640.0, 760.0]]), np.array([0.5]), "plate")
    both = Detections.merge([part, whole])
    kept = both.deduplicated(cut=np.array([True, False]))
    assert len(kept) == 1 and kept.scores.tolist() == [0.5] and kept.xyxy[0, 2] == 1640
    # without knowing which is cut, the higher score wins and the plate's right part is left out
    assert both.deduplicated().scores.tolist() == [pytest.approx(0.8)]
