"""End to end through the ``pii-blur`` command: real models, real codecs, files on disk."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, PLATE_BOX, ROOT, detail, draw_plate
from PIL import Image

from piiblur.cli import main


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def batch(tmp_path: Path, portrait: np.ndarray, empty_scene: np.ndarray) -> Path:
    """A small tree: a portrait (face and plate), a PNG of it, an empty scene, a corrupt JPEG, a text file."""
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    Image.fromarray(portrait).save(src / "sub" / "portrait.png")
    Image.fromarray(empty_scene).save(src / "sub" / "deeper" / "empty.jpg", quality=90)
    (src / "sub" / "broken.jpg").write_bytes(EXAMPLE.read_bytes()[:2000])
    (src / "notes.txt").write_text("not an image")
    return src


def test_blurs_what_it_finds_and_copies_the_rest(batch: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    code = _cli(batch, out, "--report", report, "-j", "1")
    assert code == 1  # one file failed
    err = capsys.readouterr().err
    assert "error: sub/broken.jpg:" in err and "decode" in err
    # the tree is mirrored, names and formats kept; the broken file and the text file are not written
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written[0].startswith(".pii-blur/manifest-")  # what pii-blur wrote, for a rerun
    assert written[1:] == ["portrait.jpg", "sub/deeper/empty.jpg", "sub/portrait.png"]
    assert Image.open(out / "sub" / "portrait.png").format == "PNG"
    # face and plate lose their detail; in the PNG, pixels away from them are exactly the same
    src_png = np.asarray(Image.open(batch / "sub" / "portrait.png"))
    out_png = np.asarray(Image.open(out / "sub" / "portrait.png"))
    for box in (FACE_BOX, PLATE_BOX):
        assert detail(out_png, box) < 0.05 * detail(src_png, box)
    untouched = np.ones(src_png.shape[:2], bool)
    untouched[0:260, 120:330] = False  # around the face
    untouched[400:512, 0:200] = False  # around the plate
    assert (out_png[untouched] == src_png[untouched]).all()
    # the empty scene is the same file: same bytes, same modification time
    empty_in, empty_out = batch / "sub/deeper/empty.jpg", out / "sub/deeper/empty.jpg"
    assert empty_out.read_bytes() == empty_in.read_bytes()
    assert empty_out.stat().st_mtime == empty_in.stat().st_mtime
    # the report says what happened to each file
    data = json.loads(report.read_text())
    files = {f["source"]: f for f in data["files"]}
    assert files["portrait.jpg"]["status"] == "blurred"
    assert {d["class"] for d in files["portrait.jpg"]["detections"]} == {"face", "plate"}
    assert files["sub/deeper/empty.jpg"]["status"] == "copied"
    assert files["sub/broken.jpg"]["status"] == "failed"
    assert data["summary"]["failed"] == 1 and data["summary"]["not_images"] == 1
    # the input is untouched
    assert (batch / "portrait.jpg").read_bytes() == EXAMPLE.read_bytes()


def test_jpeg_keeps_metadata_and_quality(tmp_path: Path):
    out = tmp_path / "out"
    assert _cli(EXAMPLE, out, "-j", "1") == 0
    before, after = Image.open(EXAMPLE), Image.open(out / EXAMPLE.name)
    assert after.getexif().get_ifd(0x8825) == before.getexif().get_ifd(0x8825)  # GPS
    assert after.getexif()[0x010F] == before.getexif()[0x010F]
    assert after.quantization == before.quantization
    assert detail(np.asarray(after), FACE_BOX) < 0.05 * detail(np.asarray(before), FACE_BOX)


def test_orientation_detects_upright_and_blurs_the_stored_grid(tmp_path: Path, portrait: np.ndarray):
    # store the portrait turned a quarter, tagged orientation 6 so viewers turn it back upright
    stored = np.ascontiguousarray(np.rot90(portrait, k=1))  # counter-clockwise quarter turn
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "turned.jpg"
    Image.fromarray(stored).save(src, quality=95, exif=exif)
    out = tmp_path / "out"
    assert _cli(src, out, "-j", "1") == 0
    result = Image.open(out / "turned.jpg")
    assert result.size == (512, 512) and result.getexif()[0x0112] == 6
    # the face, at x 175-275 / y 54-180 upright, sits at x 54-180 / y 237-337 in the stored grid
    face_stored = (54, 512 - 275, 180, 512 - 175)
    assert detail(np.asarray(result), face_stored) < 0.05 * detail(stored, face_stored)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_face_upright_only_in_the_stored_grid_is_blurred_too(tmp_path: Path, portrait: np.ndarray,
                                                                orientation: int):
    """A wrong or hostile orientation tag turns an upright face upside down or on its side for a viewer
    that honours it, where the nets do not find it; one that ignores the tag shows it upright. Before,
    such a file was copied as clean, its EXIF thumbnail too."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "mistagged.jpg"
    Image.fromarray(portrait).save(src, quality=95, exif=exif)
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert _cli(src, out, "-j", "1", "--report", report) == 0
    entry = json.loads(report.read_text())["files"][0]
    assert entry["status"] == "blurred" and "face" in [d["class"] for d in entry["detections"]]
    result = Image.open(out / src.name)
    assert result.getexif()[0x0112] == orientation
    face = (175, 54, 275, 180)  # in the stored grid, where the portrait stands upright
    assert detail(np.asarray(result), face) < 0.05 * detail(portrait, face)


def test_dry_run_writes_nothing_but_reports(tmp_path: Path):
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert _cli(EXAMPLE, out, "--dry-run", "--report", report, "-j", "1") == 0
    assert not out.exists()
    entry = json.loads(report.read_text())["files"][0]
    assert entry["status"] == "blurred" and not entry["written"] and entry["detections"]


def test_resume_skips_finished_images_unless_overwrite(tmp_path: Path, capsys):
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert _cli(EXAMPLE, out, "-j", "1") == 0
    first = (out / EXAMPLE.name).stat().st_mtime_ns
    assert _cli(EXAMPLE, out, "-j", "1", "--report", report) == 0
    assert json.loads(report.read_text())["files"][0]["status"] == "skipped"
    assert (out / EXAMPLE.name).stat().st_mtime_ns == first
    time.sleep(0.01)
    assert _cli(EXAMPLE, out, "-j", "1", "--overwrite") == 0
    assert (out / EXAMPLE.name).stat().st_mtime_ns > first


def test_classes_option_limits_what_is_blurred(tmp_path: Path):
    out = tmp_path / "out"
    assert _cli(EXAMPLE, out, "--classes", "plate", "-j", "1") == 0
    before, after = np.asarray(Image.open(EXAMPLE)), np.asarray(Image.open(out / EXAMPLE.name))
    assert detail(after, FACE_BOX) > 0.5 * detail(before, FACE_BOX)
    assert detail(after, PLATE_BOX) < 0.05 * detail(before, PLATE_BOX)


@pytest.mark.parametrize("inside", [".", "sub"])
def test_output_inside_input_is_refused(batch: Path, inside: str, capsys):
    assert _cli(batch, batch / inside, "-j", "1") == 2
    assert "inside" in capsys.readouterr().err


def test_missing_input_is_a_clear_error(tmp_path: Path, capsys):
    assert _cli(tmp_path / "nope", tmp_path / "out") == 2
    assert "input not found" in capsys.readouterr().err


def test_small_face_in_a_large_photo_is_found(tmp_path: Path, portrait: np.ndarray):
    """A face about 22 px tall in a 16-megapixel photo, straddling a tile seam, is blurred."""
    rng = np.random.default_rng(3)
    big = np.full((3456, 4608, 3), 128, np.uint8) + rng.integers(0, 20, (3456, 4608, 3), dtype=np.uint8)
    face = np.asarray(Image.fromarray(portrait[30:210, 150:300]).resize((27, 32), Image.Resampling.LANCZOS))
    x, y = 1296, 1700  # where tiles of the first level overlap
    big[y : y + 32, x : x + 27] = face
    draw_plate(big, 3000, 2500, w=60, h=15)
    Image.fromarray(big).save(tmp_path / "big.png")
    report = tmp_path / "r.json"
    assert _cli(tmp_path / "big.png", tmp_path / "out", "--report", report, "-j", "1") == 0
    dets = json.loads(report.read_text())["files"][0]["detections"]
    faces = [d["box"] for d in dets if d["class"] == "face"]
    assert any(b[0] < x + 13 < b[2] and b[1] < y + 16 < b[3] for b in faces), dets


def test_parallel_workers_give_the_same_output(batch: Path, tmp_path: Path):
    (batch / "sub" / "broken.jpg").unlink()
    one, two = tmp_path / "one", tmp_path / "two"
    assert _cli(batch, one, "-j", "1", "-q") == 0
    assert _cli(batch, two, "-j", "2", "-q") == 0
    for path in (p for p in one.rglob("*.*") if p.is_file() and ".pii-blur" not in p.parts):
        assert (two / path.relative_to(one)).read_bytes() == path.read_bytes()


def test_killed_run_leaves_no_partial_file_and_resumes(tmp_path: Path, portrait: np.ndarray):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        Image.fromarray(np.roll(portrait, 7 * i, axis=1)).save(src / f"p{i:02}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "pii-blur.py"), str(src), str(out), "-j", "1", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and len(list(out.glob("p*.png"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(out.glob("p*.png"))
    assert 2 <= len(finished) < 12
    for path in finished:  # everything under a final name is whole
        Image.open(path).load()
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}
    report = tmp_path / "r.json"
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    statuses = {f["source"]: f["status"] for f in json.loads(report.read_text())["files"]}
    # not processed twice; only an output the kill cut off from its manifest line, if any, is done again
    redone = [name for name in stamps if statuses[name] != "skipped"]
    assert len(redone) <= 1
    assert {p.name: p.stat().st_mtime_ns for p in finished if p.name not in redone} == {
        name: stamp for name, stamp in stamps.items() if name not in redone}
    # no temporaries left; beside the images only the manifest
    assert sorted(p.name for p in out.iterdir()) == [".pii-blur"] + [f"p{i:02}.png" for i in range(12)]
    fresh = tmp_path / "fresh"
    assert _cli(src, fresh, "-j", "1", "-q") == 0
    for i in range(12):
        assert (fresh / f"p{i:02}.png").read_bytes() == (out / f"p{i:02}.png").read_bytes()


def test_script_entry_point_from_the_repository_root(tmp_path: Path):
    result = subprocess.run([sys.executable, "pii-blur.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0 and "OUTPUT_DIR" in result.stdout


def test_decoder_warnings_land_in_the_notes_not_on_the_terminal(tmp_path: Path, blurrer, capfd):
    # an EXIF block cut short: Pillow warns while reading it; the picture itself is fine
    exif = Image.Exif()
    exif[0x010F] = "A long camera maker name"
    buffer = io.BytesIO()
    Image.open(EXAMPLE).save(buffer, format="JPEG", quality=92, exif=exif.tobytes()[:-20])
    source = tmp_path / "cut_exif.jpg"
    source.write_bytes(buffer.getvalue())
    capfd.readouterr()
    result = blurrer.process(source, tmp_path / "out.jpg")
    assert result.status == "blurred" and result.written
    assert "decoder warned: Truncated File Read" in result.notes
    assert "Truncated File Read" not in capfd.readouterr().err
