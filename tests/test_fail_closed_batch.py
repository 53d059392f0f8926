"""The batch fails closed: only what pii-blur itself wrote is skipped, an interrupt or a dead worker loses nothing."""

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
import servers
from helpers import EXAMPLE, FACE_BOX, ROOT, detail
from PIL import Image
from servers import S3

from piiblur.cli import main
from piiblur.evaluate import main as evaluate_main
from piiblur.report import Progress, summary_line
from piiblur.results import BatchResult, FileResult

s3 = servers.s3  # the fixture


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def _report(path: Path) -> dict[str, dict]:
    return {f["source"]: f for f in json.loads(path.read_text())["files"]}


def _images(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.relative_to(folder).as_posix().startswith("."))


def _portraits(folder: Path, portrait: np.ndarray, count: int, scale: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.roll(portrait, 7 * i, axis=1)
        if scale > 1:
            pixels = np.kron(pixels, np.ones((scale, scale, 1), np.uint8))
        Image.fromarray(pixels).save(folder / f"p{i:02}.png")


# resume trusts only the manifest ------------------------------------------------------------------------
def test_outputs_written_with_other_classes_are_redone(tmp_path: Path):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    assert _cli(src, out, "--classes", "plate", "-j", "1", "-q") == 0
    before = np.asarray(Image.open(EXAMPLE))
    assert detail(np.asarray(Image.open(out / "portrait.jpg")), FACE_BOX) > 0.5 * detail(before, FACE_BOX)
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    assert _report(report)["portrait.jpg"]["status"] == "blurred"  # not "skipped (already done)"
    assert detail(np.asarray(Image.open(out / "portrait.jpg")), FACE_BOX) < 0.05 * detail(before, FACE_BOX)
    # the same settings again: now it is done
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    entry = _report(report)["portrait.jpg"]
    assert entry["status"] == "skipped" and {d["class"] for d in entry["detections"]} == {"face", "plate"}


def test_files_put_into_the_output_by_hand_are_not_taken_as_done(tmp_path: Path, empty_scene: np.ndarray):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    src.mkdir()
    out.mkdir()
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    Image.fromarray(empty_scene).save(src / "empty.jpg")
    shutil.copy(EXAMPLE, out / "portrait.jpg")  # the unblurred input, newer than the input
    (out / "empty.jpg").write_text("hello")  # five bytes named like an image
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    statuses = {name: f["status"] for name, f in _report(report).items()}
    assert statuses == {"portrait.jpg": "blurred", "empty.jpg": "copied"}
    assert (out / "empty.jpg").read_bytes() == (src / "empty.jpg").read_bytes()
    # an output changed after pii-blur wrote it is done again too
    (out / "portrait.jpg").write_bytes(EXAMPLE.read_bytes())
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    statuses = {name: f["status"] for name, f in _report(report).items()}
    assert statuses == {"portrait.jpg": "blurred", "empty.jpg": "skipped"}
    assert (out / "portrait.jpg").read_bytes() != EXAMPLE.read_bytes()


def test_a_changed_input_is_done_again(tmp_path: Path, empty_scene: np.ndarray):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    src.mkdir()
    Image.fromarray(empty_scene).save(src / "a.jpg")
    assert _cli(src, out, "-j", "1", "-q") == 0
    stamp = (src / "a.jpg").stat()
    shutil.copy(EXAMPLE, src / "a.jpg")
    os.utime(src / "a.jpg", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # even with the old time
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0
    assert _report(report)["a.jpg"]["status"] == "blurred"


def test_a_manifest_in_the_input_is_neither_an_image_nor_copied(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    shutil.copy(EXAMPLE, first / "portrait.jpg")
    assert _cli(first, tmp_path / "blurred", "-j", "1", "-q") == 0
    report = tmp_path / "r.json"
    assert _cli(tmp_path / "blurred", second, "-j", "1", "-q", "--report", report) == 0  # a folder with a manifest
    assert list(_report(report)) == ["portrait.jpg"]
    lines = [json.loads(line) for f in (second / ".pii-blur").iterdir() for line in f.read_text().splitlines()]
    assert [entry["source"] for entry in lines] == ["portrait.jpg"]


# an interrupt stops soon and keeps everything written ---------------------------------------------------
def _detections(report: dict[str, dict]) -> dict[str, list]:
    return {name: [(d["class"], d["box"]) for d in entry["detections"]] for name, entry in report.items()}


def test_ctrl_c_stops_within_seconds_and_the_resumed_report_is_complete(tmp_path: Path, portrait: np.ndarray):
    src, out = tmp_path / "in", tmp_path / "out"
    _portraits(src, portrait, 16)
    stopped = tmp_path / "stopped.json"
    cmd = [sys.executable, str(ROOT / "pii-blur.py"), str(src), str(out), "-j", "2", "-q", "--report", str(stopped)]
    # as from a terminal: a test run started in the background of a script (bash ignores SIGINT there, and
    # the ignoring is inherited) would start pii-blur with Ctrl-C ignored, as it should be in the background
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    # interrupt once the batch has recorded an image (its manifest line): a file under its final name may
    # not be recorded yet, and an image not recorded is rightly done again, not reported as done
    manifests = out / ".pii-blur"
    while time.time() < deadline and not (manifests.exists()
                                          and any(f.stat().st_size for f in manifests.glob("manifest-*.jsonl"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 8, err
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    data = json.loads(stopped.read_text())
    assert data["interrupted"] == "SIGINT"
    done = {name for name, f in _report(stopped).items() if f["status"] == "blurred"}
    assert 1 <= len(done) < 16
    assert all((out / name).exists() for name in done)
    resumed = tmp_path / "resumed.json"
    assert _cli(src, out, "-j", "2", "-q", "--report", resumed) == 0
    again = _report(resumed)
    assert {name for name, f in again.items() if f["status"] == "skipped"} >= done
    whole = tmp_path / "whole.json"
    assert _cli(src, tmp_path / "whole", "-j", "2", "-q", "--report", whole) == 0
    assert _detections(again) == _detections(_report(whole))  # what the stopped run found is not lost
    assert json.loads(resumed.read_text())["summary"]["faces"] == json.loads(whole.read_text())["summary"]["faces"]
    assert _images(out) == [f"p{i:02}.png" for i in range(16)]
    for i in range(16):
        assert (out / f"p{i:02}.png").read_bytes() == (tmp_path / "whole" / f"p{i:02}.png").read_bytes()


# one image's failure never ends the batch ---------------------------------------------------------------
def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def test_a_killed_worker_fails_its_image_alone(tmp_path: Path, portrait: np.ndarray):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    _portraits(src, portrait, 6, scale=3)
    cmd = [sys.executable, str(ROOT / "pii-blur.py"), str(src), str(out), "-j", "2", "-q", "--report", str(report)]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.time() + 180
    # interrupt once the batch has recorded an image (its manifest line): a file under its final name may
    # not be recorded yet, and an image not recorded is rightly done again, not reported as done
    manifests = out / ".pii-blur"
    while time.time() < deadline and not (manifests.exists()
                                          and any(f.stat().st_size for f in manifests.glob("manifest-*.jsonl"))):
        time.sleep(0.02)
    workers = [pid for pid, cmdline in _children(proc.pid) if "spawn_main" in cmdline]
    assert len(workers) == 2
    folders = list(scratch.glob("pii-blur-workers-*/*"))
    assert len(folders) == 2  # each worker's temporary files in a folder of its own
    for folder in folders:  # as a temporary copy of the image in flight would be
        (folder / "in.jpg").write_bytes(b"unblurred")
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert not list(scratch.glob("pii-blur-workers-*")), "a dead worker's temporary files were left behind"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "worker process died" in errors[0] and "SIGKILL" in errors[0], err
    statuses = {name: f["status"] for name, f in _report(report).items()}
    assert sorted(statuses.values()) == ["blurred"] * 5 + ["failed"]
    failed = next(name for name, status in statuses.items() if status == "failed")
    assert errors[0].startswith(f"error: {failed}: ")
    assert _cli(src, out, "-j", "1", "-q", "--report", report) == 0  # the rerun does the one left
    assert _report(report)[failed]["status"] == "blurred"


def test_an_image_over_the_worker_memory_limit_fails_alone_and_the_report_is_written(tmp_path: Path,
                                                                                     portrait: np.ndarray):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    _portraits(src, portrait, 2)
    ys = np.linspace(0, 255, 9000, dtype=np.float32)
    big = np.broadcast_to(ys[:, None, None], (9000, 9000, 3)).astype(np.uint8)  # 243 MB of pixels, a small PNG
    Image.fromarray(big).save(src / "big.png", compress_level=1)
    code = _cli(src, out, "-j", "1", "--worker-memory", "1200M", "--report", report)
    assert code == 1
    statuses = {name: f["status"] for name, f in _report(report).items()}
    assert statuses == {"big.png": "failed", "p00.png": "blurred", "p01.png": "blurred"}
    assert "memory" in _report(report)["big.png"]["reason"] or "died" in _report(report)["big.png"]["reason"]
    assert _images(out) == ["p00.png", "p01.png"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_image_over_the_time_limit_is_stopped_and_fails_alone(tmp_path: Path, portrait: np.ndarray, jobs: str):
    """A worker still on one image after --time-limit is killed and replaced: that image fails with one line,
    the others are blurred after it, nothing of it is written (a file that hangs a decoder would stall the
    batch for ever). With -j 1 the limit runs the image in a worker process too."""
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    _portraits(src, portrait, 2)
    ys = np.linspace(0, 255, 9000, dtype=np.float32)
    big = np.broadcast_to(ys[:, None, None], (9000, 9000, 3)).astype(np.uint8)  # 81 megapixels: many seconds
    Image.fromarray(big).save(src / "big.png", compress_level=1)
    code = _cli(src, out, "-j", jobs, "--time-limit", "4", "--report", report)
    assert code == 1
    files = _report(report)
    assert {name: f["status"] for name, f in files.items()} == {
        "big.png": "failed", "p00.png": "blurred", "p01.png": "blurred"}
    assert "time limit" in files["big.png"]["reason"]
    assert _images(out) == ["p00.png", "p01.png"]


def test_a_time_limit_that_is_not_a_number_of_seconds_is_a_usage_error(tmp_path: Path, capsys):
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(SystemExit) as exc:
            main([str(tmp_path), str(tmp_path / "out"), "--time-limit", bad])
        assert exc.value.code == 2
    assert "seconds" in capsys.readouterr().err


# what is printed ---------------------------------------------------------------------------------------
def test_progress_rate_counts_the_first_image_time():
    stream = io.StringIO()
    progress = Progress(3, terminal=False, every=0.0, stream=stream)
    time.sleep(0.2)  # the first image takes 0.2 s
    progress.update(FileResult("a.jpg", None, "blurred", width=100, height=100))
    assert 0 < progress.rate() <= 5.0
    assert "1/3 images" in stream.getvalue()


def test_summary_counts_in_the_singular():
    batch = BatchResult([FileResult("a.jpg", "o/a.jpg", "blurred", detections=[{"class": "face", "box": []}])])
    line = summary_line(batch, dry_run=False)
    assert line.startswith("1 image read, ") and "1 face and 0 plates" in line


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path: Path, empty_scene: np.ndarray, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(empty_scene).save(src / "a\nb.jpg", "JPEG")
    (src / "c\n.jpg").write_bytes(b"broken")
    assert _cli(src, tmp_path / "out", "-j", "1", "-v") == 1
    lines = capsys.readouterr().err.splitlines()
    assert "copied: a\\nb.jpg (0 faces, 0 plates)" in lines
    assert any(line.startswith("error: c\\n.jpg: ") for line in lines)
    assert not any(line.startswith(("b.jpg", ".jpg")) for line in lines)


def test_no_contact_sheet_without_misses(tmp_path: Path, empty_scene: np.ndarray, capsys):
    Image.fromarray(empty_scene).save(tmp_path / "empty.jpg")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"empty.jpg": []}))
    sheet = tmp_path / "sheet.png"
    assert evaluate_main([str(tmp_path), "--labels", str(labels), "--contact-sheet", str(sheet)]) == 0
    assert not sheet.exists()
    assert "no misses" in capsys.readouterr().out


# object storage --------------------------------------------------------------------------------------
def test_on_s3_only_what_pii_blur_wrote_with_these_settings_is_skipped(s3: S3, tmp_path: Path):
    bucket = s3.bucket()
    s3.client.put_object(Bucket=bucket, Key="in/portrait.jpg", Body=EXAMPLE.read_bytes())
    s3.client.put_object(Bucket=bucket, Key="out/portrait.jpg", Body=EXAMPLE.read_bytes())  # put there by hand
    src, dst, report = f"s3://{bucket}/in", f"s3://{bucket}/out", tmp_path / "r.json"
    assert _cli(src, dst, "--classes", "plate", "-j", "1", "-q", "--report", report) == 0
    assert _report(report)["portrait.jpg"]["status"] == "blurred"
    assert _cli(src, dst, "-j", "1", "-q", "--report", report) == 0  # faces too now: done again
    assert _report(report)["portrait.jpg"]["status"] == "blurred"
    after = np.asarray(Image.open(io.BytesIO(s3.get(bucket, "out/portrait.jpg"))))
    assert detail(after, FACE_BOX) < 0.05 * detail(np.asarray(Image.open(EXAMPLE)), FACE_BOX)
    assert _cli(src, dst, "-j", "1", "-q", "--report", report) == 0
    entry = _report(report)["portrait.jpg"]
    assert entry["status"] == "skipped" and {d["class"] for d in entry["detections"]} == {"face", "plate"}
    manifests = [k for k in s3.client.list_objects_v2(Bucket=bucket)["Contents"] if "/.pii-blur/" in k["Key"]]
    assert len(manifests) == 2  # one object per run that wrote something
