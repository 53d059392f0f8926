"""Images in object storage: a real S3-compatible server on loopback (moto), reached through s3fs."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import servers
from helpers import EXAMPLE, ROOT
from PIL import Image
from servers import S3, check_blurred_tree, put_tree

from piiblur import storage
from piiblur.cli import main

s3 = servers.s3  # the fixture


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def test_blurs_a_bucket_prefix_into_another_and_resumes(s3: S3, tmp_path: Path, empty_scene: np.ndarray):
    src, dst = s3.bucket(), s3.bucket()
    files = put_tree(s3, src, "photos", empty_scene)
    report = tmp_path / "r.json"
    assert _cli(f"s3://{src}/photos", f"s3://{dst}/blurred", "-j", "2", "-q", "--report", report) == 1
    check_blurred_tree(s3, files, dst, "blurred")
    data = json.loads(report.read_text())
    statuses = {f["source"]: f["status"] for f in data["files"]}
    assert statuses == {"portrait.jpg": "blurred", "sub/deeper/empty.jpg": "copied", "sub/broken.jpg": "failed"}
    assert data["summary"]["not_images"] == 1 and data["summary"]["faces"] >= 1
    assert not Path(f"{report}.partial").exists()
    stamps = {k: s3.client.head_object(Bucket=dst, Key=k)["LastModified"] for k in s3.keys(dst)}
    # a rerun does only what is left, and its report still says what was found in each image
    assert _cli(f"s3://{src}/photos", f"s3://{dst}/blurred", "-j", "1", "-q", "--report", report) == 1
    again = {f["source"]: f for f in json.loads(report.read_text())["files"]}
    assert again["portrait.jpg"]["status"] == "skipped"
    assert "blurred by an earlier run" in again["portrait.jpg"]["reason"]
    assert {d["class"] for d in again["portrait.jpg"]["detections"]} == {"face", "plate"}
    assert again["sub/deeper/empty.jpg"]["status"] == "skipped"
    assert again["sub/broken.jpg"]["status"] == "failed"  # tried again: it has no output
    assert {k: s3.client.head_object(Bucket=dst, Key=k)["LastModified"] for k in s3.keys(dst)} == stamps


def test_bucket_to_local_folder_and_back(s3: S3, tmp_path: Path, empty_scene: np.ndarray):
    src, dst = s3.bucket(), s3.bucket()
    files = put_tree(s3, src, "in", empty_scene)
    local = tmp_path / "local"
    assert _cli(f"s3://{src}/in", local, "-j", "1", "-q") == 1
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())[1:] == [
        "portrait.jpg", "sub/deeper/empty.jpg"]
    assert (local / "sub/deeper/empty.jpg").read_bytes() == files["sub/deeper/empty.jpg"]
    assert storage.is_up_to_date(f"s3://{src}/in/sub/deeper/empty.jpg", local / "sub/deeper/empty.jpg")
    assert _cli(local, f"s3://{dst}/out", "-j", "1", "-q") == 0
    assert s3.get(dst, "out/sub/deeper/empty.jpg") == files["sub/deeper/empty.jpg"]
    Image.open(io.BytesIO(s3.get(dst, "out/portrait.jpg"))).load()
    assert s3.client.head_object(Bucket=dst, Key="out/portrait.jpg")["ContentType"] == "image/jpeg"


def test_single_object_and_usage_errors(s3: S3, tmp_path: Path, capsys):
    src = s3.bucket()
    s3.client.put_object(Bucket=src, Key="a/portrait.jpg", Body=EXAMPLE.read_bytes())
    assert _cli(f"s3://{src}/a/portrait.jpg", f"s3://{src}/b", "-q") == 0
    assert s3.keys(src) == ["a/portrait.jpg", "b/portrait.jpg"]
    assert _cli(f"s3://{src}/a", f"s3://{src}/a/out", "-q") == 2
    assert "inside" in capsys.readouterr().err
    assert _cli(f"s3://{src}/nothing-here", tmp_path / "o", "-q") == 2
    assert "input not found" in capsys.readouterr().err


def test_killed_run_on_s3_leaves_no_partial_object_and_resumes(s3: S3, tmp_path: Path, portrait: np.ndarray):
    src, dst = s3.bucket(), s3.bucket()
    for i in range(12):
        out = io.BytesIO()
        Image.fromarray(np.roll(portrait, 7 * i, axis=1)).save(out, "PNG")
        s3.client.put_object(Bucket=src, Key=f"in/p{i:02}.png", Body=out.getvalue())
    cmd = [sys.executable, str(ROOT / "pii-blur.py"), f"s3://{src}/in", f"s3://{dst}/out", "-j", "1", "-q",
           "--report", str(tmp_path / "killed.json")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(s3.keys(dst)) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = s3.keys(dst)
    assert 2 <= len(finished) < 12
    for key in finished:  # everything under a final name is whole
        Image.open(io.BytesIO(s3.get(dst, key))).load()
    stamps = {k: s3.client.head_object(Bucket=dst, Key=k)["ETag"] for k in finished}
    report = tmp_path / "killed.json"
    assert _cli(f"s3://{src}/in", f"s3://{dst}/out", "-j", "1", "-q", "--report", report) == 0
    files = {f["source"]: f for f in json.loads(report.read_text())["files"]}
    # not processed twice, and reported with what the killed run found; only an output the kill cut off
    # from its manifest line, if any, is done again (the same bytes: the same ETag)
    redone = [key for key in finished if files[key.removeprefix("out/")]["status"] != "skipped"]
    assert len(redone) <= 1
    for key in finished:
        entry = files[key.removeprefix("out/")]
        assert entry["detections"], entry
    assert {k: s3.client.head_object(Bucket=dst, Key=k)["ETag"] for k in finished} == stamps
    assert s3.keys(dst) == [f"out/p{i:02}.png" for i in range(12)]
    assert _cli(f"s3://{src}/in", f"s3://{dst}/fresh", "-j", "1", "-q") == 0
    for i in range(12):
        assert s3.get(dst, f"fresh/p{i:02}.png") == s3.get(dst, f"out/p{i:02}.png")


# the layer itself, on fsspec's in-memory filesystem (a filesystem with renames) -----------------
@pytest.fixture
def memfs():
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"memory://t{time.monotonic_ns()}"
    yield fs, root
    fs.rm(root.removeprefix("memory://"), recursive=True)


def test_write_atomic_through_a_temporary_on_filesystems_with_rename(memfs, monkeypatch):
    fs, root = memfs
    target = storage.join(root, "a/b/x.jpg")
    moved: list[tuple[str, str]] = []
    real_mv = fs.mv
    monkeypatch.setattr(fs, "mv", lambda a, b, **kw: (moved.append((a, b)), real_mv(a, b, **kw)))
    storage.write_atomic(target, b"complete")
    assert storage.read_bytes(target) == b"complete"
    assert len(moved) == 1 and moved[0][0].endswith(storage.TMP_SUFFIX)
    assert [rel for rel, _ in storage.list_files(root)] == ["a/b/x.jpg"]
    fs.pipe_file(f"{root.removeprefix('memory://')}/a/.x.jpg.99{storage.TMP_SUFFIX}", b"half")
    assert storage.sweep_temporaries(root) == 1
    assert [k.rsplit("/", 1)[-1] for k in fs.find(root.removeprefix("memory://"))] == ["x.jpg"]


def test_locations_and_listing(memfs, tmp_path: Path):
    _, root = memfs
    assert storage.location("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert storage.location("some/folder") == Path("some/folder")
    assert storage.join("s3://b/p", "x/y.jpg") == "s3://b/p/x/y.jpg"
    for rel in ("z.jpg", "d/y.png", ".hidden/h.jpg", "d/.dot.jpg"):
        storage.write_atomic(storage.join(root, rel), b"1")
    listed = dict(storage.list_files(root))
    assert sorted(listed) == ["d/y.png", "z.jpg"]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "y.png").write_bytes(b"1")
    (tmp_path / ".h").mkdir()
    (tmp_path / ".h" / "x.png").write_bytes(b"1")
    assert [rel for rel, _ in storage.list_files(tmp_path)] == ["d/y.png"]
