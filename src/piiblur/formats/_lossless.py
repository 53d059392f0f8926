"""Lossless JPEG transcoding: the same DCT coefficients in another stream layout, or blocks dropped in.

Two tools do this without decoding to pixels:

- libjpeg-turbo's ``jpegtran`` (Debian package ``libjpeg-turbo-progs``), when it is installed: it writes
  progressive scans and restart intervals, and ``-drop`` replaces a rectangle of blocks with those of
  another JPEG of the same components, sampling and tables (the CMYK path: jpeglib cannot write a
  fourth component).
- ``mozjpeg-lossless-optimization`` (a wheel with MozJPEG's transcoder, always installed): progressive
  scans with optimised Huffman tables, no restart markers. Used for progressive output when
  ``jpegtran`` is missing.

Neither copies metadata here (``-copy none``): the JPEG writer splices the input's segments back.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_TIMEOUT_S = 300


def jpegtran() -> str | None:
    """The path of libjpeg-turbo's ``jpegtran``, or None when it is not installed."""
    return shutil.which("jpegtran")


def _run(command: list[str], data: bytes) -> bytes | None:
    """The tool's output stream, or None when it failed or warned. A warning (exit status 2) means a
    damaged stream that libjpeg-turbo may read differently from the decoder whose pixels were searched:
    blocks dropped into it could miss what they should cover, so the caller re-encodes instead."""
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.stdout.startswith(b"\xff\xd8") else None


def _layout_options(progressive: bool, restart: int, arithmetic: bool = False) -> list[str]:
    options = ["-copy", "none", "-arithmetic" if arithmetic else "-optimize"]
    if progressive:
        options.append("-progressive")
    if restart:
        options += ["-restart", f"{restart}B"]
    return options


def layout_note(progressive: bool, restart: int, tool: str = "jpegtran") -> str:
    kept = [k for k, on in (("progressive scans", progressive), (f"a restart every {restart} MCUs", restart)) if on]
    return f"{' and '.join(kept)} as the input's ({tool}, lossless)"


def relayout(data: bytes, progressive: bool, restart: int, arithmetic: bool = False) -> tuple[bytes | None, str]:
    """The same coefficients as a progressive stream and/or with restart markers every ``restart`` MCUs,
    arithmetic-coded where ``arithmetic`` (jpegtran only; the MozJPEG transcoder writes Huffman coding).

    Returns the new stream (None when no tool could do it) and a note on what was kept.
    """
    tool = jpegtran()
    if tool is not None:
        rewritten = _run([tool, *_layout_options(progressive, restart, arithmetic)], data)
        if rewritten is not None:
            return rewritten, layout_note(progressive, restart)
    why = "jpegtran refused the stream" if tool else "install jpegtran to keep it"
    dropped = f"restart interval dropped ({why})"
    if not progressive:
        return None, dropped
    import mozjpeg_lossless_optimization as mozjpeg

    try:
        rewritten = mozjpeg.optimize(data)
    except ValueError:
        return None, "progressive input written as baseline (the progressive transcoder refused the stream)"
    note = layout_note(True, 0, "MozJPEG transcoder")
    if restart:
        note += "; " + dropped
    if arithmetic:
        note += "; Huffman-coded (the input was arithmetic-coded: jpegtran would keep that)"
    return rewritten, note


def mcu_rectangles(mcus: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover the True cells of a (rows, columns) grid exactly with rectangles (row0, row1, col0, col1).

    Each row's runs of True become rectangles; a run that repeats in the next row extends its rectangle
    downwards. A blurred ellipse gives about one rectangle per MCU row it crosses.
    """
    done: list[tuple[int, int, int, int]] = []
    open_runs: dict[tuple[int, int], int] = {}  # (col0, col1) -> first row
    for row in range(mcus.shape[0] + 1):
        runs: set[tuple[int, int]] = set()
        if row < mcus.shape[0]:
            padded = np.concatenate(([False], mcus[row], [False])).astype(np.int8)
            edges = np.flatnonzero(np.diff(padded))
            runs = {(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)}
        for run in [r for r in open_runs if r not in runs]:
            done.append((open_runs.pop(run), row, *run))
        for run in runs:
            open_runs.setdefault(run, row)
    return sorted(done)


Patch = tuple[int, int, bytes]  # (x, y, JPEG): a block-aligned picture to drop in at pixel offset (x, y)
Region = tuple[tuple[int, int, int, int], list[Patch]]  # (x, y, width, height) and the patches inside it


def drop(data: bytes, regions: list[Region], progressive: bool, restart: int) -> bytes | None:
    """``data`` with every patch dropped in, every other block copied as it is.

    Each region (an MCU-aligned rectangle around one blurred object) is cut out losslessly
    (``-crop``), its patches are dropped into that small cut-out, and the cut-out is dropped back:
    two passes over the whole file per region, however many patches an ellipse needs. Patches must
    share the stream's components, sampling and quantisation tables. The result keeps the input's
    progressive mode and restart interval. None when ``jpegtran`` is missing or refuses.
    """
    tool = jpegtran()
    if tool is None:
        return None
    layout = _layout_options(progressive, restart)
    with tempfile.TemporaryDirectory(prefix="piiblur-") as tmp:
        patch_path, region_path = Path(tmp) / "patch.jpg", Path(tmp) / "region.jpg"
        for (x0, y0, width, height), patches in regions:
            region = _run([tool, "-copy", "none", "-crop", f"{width}x{height}+{x0}+{y0}"], data)
            for x, y, patch in patches:
                patch_path.write_bytes(patch)
                if region is not None:
                    region = _run([tool, "-copy", "none", "-drop", f"+{x - x0}+{y - y0}", str(patch_path)], region)
            if region is None:
                return None
            region_path.write_bytes(region)
            result = _run([tool, *layout, "-drop", f"+{x0}+{y0}", str(region_path)], data)
            if result is None:
                return None
            data = result
    return data
