"""What pii-blur itself wrote into an output folder: the only outputs a rerun skips.

Every output a run writes gets one JSON line in ``OUTPUT_DIR/.pii-blur/``,
added once the output is whole under its final name:

* ``source``: the image's path relative to the input (the output's, too);
* ``settings``: a hash of the settings that decide what is blurred
  (``settings_key``);
* ``input``: the input's size and modification time as they were before it
  was read, and the SHA-256 of the bytes that were read;
* ``output``: the output's size, modification time and SHA-256 as written;
* ``result``: what was found (status, size, detections, notes), so that the
  report of a resumed run tells the same as an uninterrupted one.

A rerun skips an image only when its latest line has the same settings and
the input and the output on disk still have the size and time recorded;
anything else (an output copied in by hand, a run with other classes, a
changed input, an output written but killed before its line) is done again.

On a local folder each run appends to its own file, a line at a time and
flushed. An object store cannot append: each line is put as its own small
object, and at the end of the run the run's lines are gathered into one object
and the small ones removed. The folder's name starts with a dot, and hidden
names are never listed as images, in the input or the output.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from piiblur import __version__, storage
from piiblur.results import FileResult
from piiblur.settings import Settings
from piiblur.storage import Location

MANIFEST_DIR = ".pii-blur"
FORMAT = 1
RESULT_FIELDS = ("status", "reason", "width", "height", "orientation", "projection", "detections", "notes")

Stamp = dict[str, int]  # {"size": bytes, "mtime_ns": modification time}


def settings_key(settings: Settings) -> str:
    """A hash of everything that decides what an output looks like (not threads nor device)."""
    relevant = {
        "format": FORMAT,
        "classes": sorted(settings.classes),
        "thresholds": dict(sorted(settings.thresholds.items())),
        "strength": settings.strength,
        "max_pixels": settings.max_pixels,
        "precision": settings.precision,
        "projection": settings.projection,
        "views": settings.views,
        "version": __version__,
        "models": _models_key(),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:24]


@functools.cache
def _models_key() -> str:
    """The shipped detector files as they are: a new model redoes what the old one passed."""
    folder = Path(__file__).parent / "models"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.onnx")):  # a few MB each, read once per process
        digest.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _seconds_ns(seconds: float | None) -> int | None:
    """An object's time at the resolution every listing and HEAD agree on: whole seconds."""
    return None if seconds is None else math.floor(seconds) * 1_000_000_000


def stamp(loc: Location) -> Stamp | None:
    """Size and modification time of ``loc`` now, or None when it is not there."""
    try:
        if isinstance(loc, Path):
            st = loc.stat()
            return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        fs, path = storage._fs(loc)
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None
    mtime = _seconds_ns(storage._info_mtime(info))
    return None if mtime is None else {"size": int(info.get("size") or 0), "mtime_ns": mtime}


def stamps_under(root: str) -> dict[str, Stamp]:
    """Size and time of every file under a URL prefix, by relative path: one listing."""
    fs, path = storage._fs(root)
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return {}
    prefix = path.rstrip("/") + "/"
    stamps: dict[str, Stamp] = {}
    for key, info in fs.find(path, detail=True).items():
        mtime = _seconds_ns(storage._info_mtime(info))
        if info.get("type") != "directory" and key.startswith(prefix) and mtime is not None:
            stamps[key[len(prefix):]] = {"size": int(info.get("size") or 0), "mtime_ns": mtime}
    return stamps


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(result: FileResult, key: str, source: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """The manifest line for an output just written."""
    fields = asdict(result)
    return {"source": result.source, "settings": key, "input": source, "output": output,
            "result": {name: fields[name] for name in RESULT_FIELDS}}


def still_valid(record: dict[str, Any], key: str, source_now: Stamp | None, output_now: Stamp | None) -> bool:
    """True when ``record`` was written with settings ``key`` and input and output are as it left them."""
    if record.get("settings") != key or source_now is None or output_now is None:
        return False
    recorded_in, recorded_out = record.get("input") or {}, record.get("output") or {}
    return all(recorded_in.get(f) == source_now[f] and recorded_out.get(f) == output_now[f]
               for f in ("size", "mtime_ns"))


class Manifest:
    """The manifest of one output folder (a local path or a URL)."""

    def __init__(self, output_dir: Location) -> None:
        self.folder = storage.join(output_dir, MANIFEST_DIR)
        self.run_id = f"{time.time_ns():020d}-{os.getpid()}"
        self._fh: IO[str] | None = None
        self._pieces: list[str] = []  # the small objects this run put (object stores)
        self._lines: list[str] = []

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest line for each source, from every run's file (oldest first)."""
        records: dict[str, dict[str, Any]] = {}
        for text in self._files():
            for line in text.splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    record = json.loads(line)  # a line cut by a kill is not JSON
                    records[str(record["source"])] = record
        return records

    def _files(self) -> list[str]:
        if isinstance(self.folder, Path):
            if not self.folder.is_dir():
                return []
            names = sorted(p for p in self.folder.iterdir() if p.name.endswith(".jsonl"))
            return [p.read_text(errors="replace") for p in names]
        fs, path = storage._fs(self.folder)
        fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        keys = sorted(k for k in fs.find(path) if k.endswith(".jsonl"))
        return [bytes(fs.cat_file(k)).decode(errors="replace") for k in keys]

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        if isinstance(self.folder, Path):
            if self._fh is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.folder / f"manifest-{self.run_id}.jsonl", "a")  # noqa: SIM115 - kept open
            self._fh.write(line)
            self._fh.flush()
            return
        piece = storage.join(self.folder, f"manifest-{self.run_id}-{len(self._pieces):08d}.jsonl")
        storage.write_atomic(piece, line.encode())
        self._pieces.append(str(piece))
        self._lines.append(line)

    def close(self) -> None:
        """Local: close the file. Object store: gather this run's lines into one object."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        pieces, lines = self._pieces, self._lines
        self._pieces, self._lines = [], []
        if len(pieces) < 2:
            return
        with contextlib.suppress(Exception):  # if the store refuses, the pieces are read next time all the same
            storage.write_atomic(storage.join(self.folder, f"manifest-{self.run_id}.jsonl"), "".join(lines).encode())
            for piece in pieces:
                fs, path = storage._fs(piece)
                fs.rm_file(path)
