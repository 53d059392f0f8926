"""Fail closed: never write where the input lives, one clear line instead of a traceback.

Every case runs the ``pii-blur`` command on small images made here; the cases that must
stop before any work need no model at all.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from PIL import Image

from piiblur import storage
from piiblur.cli import main

SRC = ROOT / "src"


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def _image(path: Path, shade: int = 90) -> bytes:
    """A small smooth JPEG with nothing to hide; its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ys = np.linspace(0, 1, 48, dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(shade + 60 * ys, (48, 64, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path.read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


# where the output may go ----------------------------------------------------------------------
def test_input_folder_inside_the_output_folder_is_refused(tmp_path: Path, capsys):
    io_dir = tmp_path / "io"
    _image(io_dir / "sub" / "x.jpg", 40)
    _image(io_dir / "sub" / "sub" / "x.jpg", 200)
    before = _tree(io_dir)
    assert _cli(io_dir / "sub", io_dir, "-j", "1") == 2
    assert "inside the output folder" in _one_line(capsys.readouterr().err)
    assert _tree(io_dir) == before


def test_the_input_folder_as_output_is_refused_in_any_spelling(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo = _image(tmp_path / "a" / "photo.jpg")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "up").symlink_to(tmp_path)
    spellings = [f"file://{tmp_path}/a", f"file://{tmp_path}/a/", "link", "./a/../a/", f"{tmp_path}/up/a"]
    for output in spellings:
        assert _cli("a", output, "--overwrite", "-j", "1") == 2, output
        assert "input folder" in _one_line(capsys.readouterr().err)
        assert (tmp_path / "a" / "photo.jpg").read_bytes() == photo


def test_a_single_image_whose_output_is_itself_is_refused(tmp_path: Path, capsys):
    photo = _image(tmp_path / "a" / "photo.jpg")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "photo.jpg").symlink_to(tmp_path / "a" / "photo.jpg")  # its output would be a/photo.jpg
    assert _cli(tmp_path / "b" / "photo.jpg", f"file://{tmp_path}/a/", "--overwrite", "-j", "1") == 2
    assert "holds the input file" in _one_line(capsys.readouterr().err)
    assert (tmp_path / "a" / "photo.jpg").read_bytes() == photo


def test_output_dir_that_is_a_file_is_one_line(tmp_path: Path, capsys):
    _image(tmp_path / "a" / "photo.jpg")
    (tmp_path / "out").write_text("a file")
    assert _cli(tmp_path / "a", tmp_path / "out") == 2
    assert "is a file" in _one_line(capsys.readouterr().err)
    assert (tmp_path / "out").read_text() == "a file"


def test_output_dir_that_cannot_be_created_is_one_line(tmp_path: Path, capsys):
    # sysfs refuses new folders even to root, like a read-only file system
    _image(tmp_path / "a" / "photo.jpg")
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys here")
    assert _cli(tmp_path / "a", "/sys/kernel/pii-blur-test/out") == 1
    assert "cannot create the output folder" in _one_line(capsys.readouterr().err)


def test_writes_through_a_symlinked_folder_in_the_output_are_refused(tmp_path: Path, capsys):
    _image(tmp_path / "in" / "top.jpg", 60)
    _image(tmp_path / "in" / "sub" / "x.jpg", 120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)
    assert _cli(tmp_path / "in", out, "-j", "1", "-q") == 1
    err = capsys.readouterr().err
    assert "error: sub/x.jpg: not written" in err and "outside the output folder" in err
    assert list(elsewhere.iterdir()) == []
    assert (out / "top.jpg").read_bytes() == (tmp_path / "in" / "top.jpg").read_bytes()  # the batch went on


# the report ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["the input image", "inside the input", "an image outside"])
def test_report_that_could_destroy_an_image_or_the_input_is_refused(tmp_path: Path, capsys, where: str):
    photo = _image(tmp_path / "a" / "photo.jpg")
    other = _image(tmp_path / "other.png")
    report = {"the input image": tmp_path / "a" / "photo.jpg", "inside the input": tmp_path / "a" / "r.json",
              "an image outside": tmp_path / "other.png"}[where]
    assert _cli(tmp_path / "a", tmp_path / "out", "--report", report, "-j", "1") == 2
    _one_line(capsys.readouterr().err)
    assert (tmp_path / "a" / "photo.jpg").read_bytes() == photo and (tmp_path / "other.png").read_bytes() == other
    assert not (tmp_path / "a" / "r.json").exists() and not (tmp_path / "out").exists()  # nothing was done


def test_report_that_is_a_folder_is_refused_before_any_work(tmp_path: Path, capsys):
    _image(tmp_path / "a" / "photo.jpg")
    (tmp_path / "reports").mkdir()
    assert _cli(tmp_path / "a", tmp_path / "out", "--report", tmp_path / "reports", "-j", "1") == 2
    assert "is a folder" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_report_in_the_output_folder_is_fine_and_counts_hidden_files(tmp_path: Path, capsys):
    src = tmp_path / "in"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref")
    (src / ".DS_Store").write_bytes(b"\0")
    (src / "._photo.jpg").write_bytes(b"\0\5\26\7")  # macOS resource fork: not an image
    (src / "notes.txt").write_text("text")
    report = tmp_path / "out" / "report.json"
    assert _cli(src, tmp_path / "out", "--report", report, "-j", "1") == 0
    summary = json.loads(report.read_text())["summary"]
    assert summary["hidden"] == 3 and summary["not_images"] == 1 and summary["failed"] == 0
    assert "3 hidden files or folders skipped" in capsys.readouterr().err


def _outputs(out: Path) -> list[str]:
    """The images written (not pii-blur's own manifest folder, .pii-blur)."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


# what is read ----------------------------------------------------------------------------------
def test_only_regular_files_are_read_and_the_batch_goes_on(tmp_path: Path, capsys):
    src = tmp_path / "in"
    good = _image(src / "good.jpg")
    os.mkfifo(src / "fifo.jpg")
    (src / "zero.jpg").symlink_to("/dev/zero")
    out = tmp_path / "out"
    assert _cli(src, out, "-j", "1", "-q") == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert any(line.startswith("error: fifo.jpg: ") and "not a regular file (a FIFO)" in line for line in lines)
    assert any(line.startswith("error: zero.jpg: ") and "not a regular file (a character device)" in line
               for line in lines)
    assert (out / "good.jpg").read_bytes() == good
    assert _outputs(out) == ["good.jpg"]


def test_files_over_max_bytes_are_refused(tmp_path: Path, capsys):
    small = _image(tmp_path / "in" / "small.jpg")
    big = tmp_path / "in" / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), np.uint8)).save(big)
    assert len(small) < 20_000 < big.stat().st_size
    out = tmp_path / "out"
    assert _cli(tmp_path / "in", out, "--max-bytes", "20K", "-j", "1", "-q") == 1
    assert "error: big.png:" in capsys.readouterr().err
    assert _outputs(out) == ["small.jpg"]


def test_read_bytes_reads_at_most_the_limit(tmp_path: Path):
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(storage.Refused, match="not a regular file"):
        storage.read_bytes(tmp_path / "zero.jpg", 10)
    (tmp_path / "f.jpg").write_bytes(b"x" * 11)
    assert storage.read_bytes(tmp_path / "f.jpg", 11) == b"x" * 11
    with pytest.raises(storage.Refused, match="over the limit of 10"):
        storage.read_bytes(tmp_path / "f.jpg", 10)


@pytest.mark.parametrize(("text", "value"), [("2G", 2 * 2**30), ("500M", 500 * 2**20), ("1048576", 2**20),
                                             ("1.5KiB", 1536)])
def test_max_bytes_takes_sizes_with_units(text: str, value: int):
    from piiblur.cli import blur_parser

    assert blur_parser().parse_args(["a", "b", "--max-bytes", text]).max_bytes == value


# folders that cannot be read ----------------------------------------------------------------------
def _without_root_file_access() -> None:
    """In the child, before exec: drop the capabilities that let root read any folder (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) from the bounding set, so the program it runs is held to permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def test_an_unreadable_folder_is_a_failure(tmp_path: Path):
    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    (src / "notes.txt").write_text("text")
    _image(src / "locked" / "x.jpg")
    (src / "locked").chmod(0)
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "piiblur", str(src), str(tmp_path / "out"), "--report", str(report), "-j", "1"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                                preexec_fn=_without_root_file_access if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot run without root's file access here: {exc}")
    finally:
        (src / "locked").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "error: locked/: cannot read this folder: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(report.read_text())["summary"]["failed"] == 1


def test_a_folder_gone_while_walking_is_recorded(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jpg").write_bytes(b"1")
    listing = storage.Listing()
    walk = storage.list_files(tmp_path, listing)
    assert next(walk)[0] == "a.jpg"  # the top folder is read: sub is next
    shutil.rmtree(tmp_path / "sub")
    assert list(walk) == []
    assert listing.unreadable == [("sub", "No such file or directory")]


# tracebacks where a line belongs ---------------------------------------------------------------------
def test_unknown_url_scheme_is_a_usage_error(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as stop:
        _cli("nosuch://bucket/x", tmp_path / "out")
    assert stop.value.code == 2 and "unknown URL scheme nosuch://" in capsys.readouterr().err


def test_a_url_that_cannot_be_reached_is_not_called_missing(tmp_path: Path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _cli(f"http://127.0.0.1:{port}/x.jpg", tmp_path / "out") == 1
    line = _one_line(capsys.readouterr().err)
    assert "cannot reach" in line and "not found" not in line


def test_s3_without_credentials_is_one_line(tmp_path: Path):
    pytest.importorskip("s3fs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(SRC), AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_CONFIG_FILE="/nonexistent", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    cmd = [sys.executable, "-m", "piiblur", "s3://bucket/photos", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "cannot reach s3://bucket/photos" in _one_line(result.stderr)


def test_usage_shows_both_forms(capsys):
    with pytest.raises(SystemExit):
        _cli("--help")
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "INPUT OUTPUT_DIR" in usage and "pii-blur evaluate IMAGES_DIR" in usage


@pytest.mark.parametrize("labels", [{"x.jpg": [{"class": "face", "box": [1, 2]}]},
                                    {"x.jpg": [{"class": "face", "box": [10, 10, "a", 20]}]},
                                    {"x.jpg": [{"box": [1, 2, 3, 4]}]},
                                    {"x.jpg": {"class": "face"}},
                                    [1, 2]])
def test_evaluate_with_malformed_labels_is_one_line(tmp_path: Path, capsys, labels: object):
    _image(tmp_path / "images" / "x.jpg")
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    assert _cli("evaluate", tmp_path / "images", "--labels", tmp_path / "labels.json") == 2
    assert "labels.json" in _one_line(capsys.readouterr().err)


def test_evaluate_on_a_missing_folder_is_one_line(tmp_path: Path, capsys):
    (tmp_path / "labels.json").write_text(json.dumps({"a.jpg": [], "b.jpg": []}))
    assert _cli("evaluate", tmp_path / "nope", "--labels", tmp_path / "labels.json") == 2
    captured = capsys.readouterr()
    assert "images folder not found" in _one_line(captured.err) and captured.out == ""
