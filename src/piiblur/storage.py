"""Writing results safely: a temporary file beside the target, then a rename.

A run killed at any moment leaves either the old state or the complete new
file under the final name, never a half-written one. Leftover temporaries
carry ``TMP_SUFFIX`` and are swept by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".pii-blur-tmp"


@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(target: Path, data: bytes) -> None:
    with _temporary_beside(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def copy_atomic(source: Path, target: Path) -> None:
    """Byte-for-byte copy that keeps the source's modification time."""
    with _temporary_beside(target) as tmp:
        shutil.copy2(source, tmp)


def sweep_temporaries(root: Path) -> int:
    """Remove temporaries left by a killed run under ``root``; returns how many."""
    if not root.is_dir():
        return 0
    count = 0
    for tmp in root.rglob(f"*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            count += 1
    return count


def is_up_to_date(source: Path, target: Path) -> bool:
    """True when ``target`` exists and is at least as new as ``source`` (a finished earlier run)."""
    try:
        return target.stat().st_mtime >= source.stat().st_mtime
    except FileNotFoundError:
        return False
