"""The fuzz run of ``benchmarks/fuzz.py``, small: mutated images and hostile metadata fail closed, and no
decoder sees in what was written a face or plate that it sees in the input (``benchmarks/leaks.py``)."""

from __future__ import annotations

import json
import shutil
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
    leaks = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "leaks.py"), str(tmp_path / "work")],
                           capture_output=True, text=True, timeout=1800)
    assert leaks.returncode == 0, leaks.stdout[-6000:] + leaks.stderr[-3000:]
    assert "outputs with a leak: 0" in leaks.stdout


@pytest.mark.slow
def test_the_leak_check_finds_a_face_copied_through_and_not_the_blurred_one(tmp_path: Path) -> None:
    """``leaks.py`` must be able to fail: an output that is its input shows its face and plate to every
    decoder; the same file blurred by pii-blur shows them to none."""
    example = ROOT / "examples" / "street_portrait.jpg"
    for folder in ("in/b000", "out/b000", "blurred"):
        (tmp_path / folder).mkdir(parents=True)
    shutil.copy(example, tmp_path / "in" / "b000" / "a.jpg")
    shutil.copy(example, tmp_path / "out" / "b000" / "a.jpg")
    (tmp_path / "samples.json").write_text(json.dumps([[{"label": "a.jpg"}]]))
    leaks = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "leaks.py"), str(tmp_path)],
                           capture_output=True, text=True, timeout=600)
    assert leaks.returncode == 1, leaks.stdout + leaks.stderr
    assert "outputs with a leak: 1" in leaks.stdout
    for decoder in ("pillow frame 0", "opencv"):
        assert f"{decoder}: face" in leaks.stdout and f"{decoder}: plate" in leaks.stdout

    subprocess.run([sys.executable, "-m", "piiblur", str(example), str(tmp_path / "blurred")], check=True,
                   capture_output=True, timeout=600)
    shutil.copy(tmp_path / "blurred" / "street_portrait.jpg", tmp_path / "out" / "b000" / "a.jpg")
    leaks = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "leaks.py"), str(tmp_path)],
                           capture_output=True, text=True, timeout=600)
    assert leaks.returncode == 0, leaks.stdout + leaks.stderr


def test_a_decoder_that_hangs_is_counted_and_the_leak_check_still_ends(tmp_path: Path) -> None:
    """A libjpeg whose heap a hostile file corrupted can wait on malloc's lock for ever (seen once in CI):
    ``leaks.py`` kills its decoding process after ``decode_seconds``, runs each decoder again alone, counts
    the one that hangs, and exits (before, the hung process kept it from exiting)."""
    driver = tmp_path / "driver.py"
    driver.write_text(f'''
import sys, time
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import leaks

def hang(data):
    time.sleep(1000)
    yield

leaks.SOURCES = (hang,) + leaks.SOURCES[1:]  # at the top level: the spawned decoding process runs it too
leaks.decode_seconds = lambda size: 3.0
if __name__ == "__main__":
    found = leaks.decodings(open({str(ROOT / "examples" / "street_portrait.jpg")!r}, "rb").read())
    print(sorted(found), dict(leaks.ABORTED))
''')
    done = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "{'hang': 1}" in done.stdout and "'opencv'" in done.stdout and "'libjpeg 6b'" in done.stdout
