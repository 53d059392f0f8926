"""The fuzz run of ``benchmarks/fuzz.py``, small: mutated images and hostile metadata fail closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_a_hundred_mutated_files_are_each_written_or_failed_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--count", "100", "--batch", "100", "--seed", "7",
         "--keep", str(tmp_path / "work"), "--json", str(tmp_path / "fuzz.json")],
        capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
