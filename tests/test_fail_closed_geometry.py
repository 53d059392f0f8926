"""Fail closed on geometry: the tile pyramid and the views of the sphere for every image size,
hostile GPano, and blur strengths that would leave a face recognisable or abort the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from piiblur import planar, sphere

MAX_SIDE = 20000


# -- the tile pyramid ----------------------------------------------------------------------------------
def _check_spans(spans: list[tuple[int, int]], length: int, tile: int) -> None:
    """Spans lie within [0, length), are at most a tile, cover every pixel, and overlap by OVERLAP."""
    assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == length
    for (start, size), (nxt, _) in zip(spans, spans[1:], strict=False):
        assert nxt > start
        assert start + size - nxt >= planar.OVERLAP - 1  # neighbours share the overlap (up to rounding)
    assert all(0 <= s and 1 <= n <= tile and s + n <= length for s, n in spans)


def _check_pyramid(width: int, height: int, tile: int) -> None:
    scales = planar.pyramid_scales(width, height, tile)
    longest = max(width, height)
    assert 1.0 in scales  # the full resolution is always searched
    assert len(scales) <= 3 + math.ceil(math.log(max(longest / tile, 1.0), planar.PYRAMID_STEP))
    assert all(math.isfinite(s) and s > 0 for s in scales)
    assert all(a > b and a / b <= planar.PYRAMID_STEP * (1 + 1e-9) for a, b in zip(scales, scales[1:], strict=False))
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
