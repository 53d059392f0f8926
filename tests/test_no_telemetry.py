"""pii-blur reports to no one and leaves nothing behind: no telemetry state in HOME or the temporary folder.

Recent onnxruntime wheels for Linux (seen with 1.32.0) start a telemetry client when imported: a device id
under ``~/.cache/Microsoft``, a session file in TMPDIR and a queue of reports for Microsoft's collector.
``piiblur/__init__.py`` turns it off unless the user has chosen otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLE


def _run(tmp_path: Path, name: str, telemetry: str | None, *options: str) -> list[str]:
    """``pii-blur`` on two pictures in a fresh process with its own HOME and TMPDIR; what it left in them."""
    home, temp, source = tmp_path / f"{name}-home", tmp_path / f"{name}-tmp", tmp_path / f"{name}-in"
    for folder in (home, temp, source):
        folder.mkdir()
    for picture in ("a.jpg", "b.jpg"):
        (source / picture).write_bytes(EXAMPLE.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), TMPDIR=str(temp), XDG_CACHE_HOME=str(home / ".cache"))
    if telemetry is not None:
        env["ORT_DISABLE_TELEMETRY"] = telemetry
    done = subprocess.run([sys.executable, "-m", "piiblur", str(source), str(tmp_path / f"{name}-out"), *options],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return sorted(str(p.relative_to(tmp_path)) for folder in (home, temp) for p in folder.rglob("*") if p.is_file())


def test_no_telemetry_state_is_written_by_pii_blur_or_its_workers(tmp_path: Path):
    # the user's own choice is kept: asked for, onnxruntime's client shows what it leaves (this also shows
    # that the check below can see it)
    chosen = _run(tmp_path, "chosen", "0", "-j", "1")
    if not chosen:
        pytest.skip("this onnxruntime keeps no telemetry state: nothing to turn off")
    assert any("deviceid" in path for path in chosen)
    assert _run(tmp_path, "default", None, "-j", "1") == []
    assert _run(tmp_path, "workers", None, "-j", "2") == []
