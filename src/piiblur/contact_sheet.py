"""Square crops laid out in a grid: the contact sheets of ``evaluate`` (misses) and ``audit`` (what is left)."""

from __future__ import annotations

import math

import numpy as np


def grid(tiles: list[np.ndarray], cell: int, max_cols: int) -> np.ndarray:
    """``tiles`` (each ``cell`` x ``cell`` RGB) row by row, at most ``max_cols`` a row, on white."""
    cols = min(max_cols, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * cell, cols * cell, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
    return sheet
