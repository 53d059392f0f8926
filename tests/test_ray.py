"""The Ray engine on a real local Ray cluster (loopback, 2 CPUs), with folders and with S3 (moto)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import servers
from helpers import EXAMPLE, FACE_BOX, detail
from PIL import Image
from servers import S3, check_blurred_tree, put_tree

from piiblur.cli import main

ray = pytest.importorskip("ray")
s3 = servers.s3  # the fixture


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def cluster(s3: S3) -> Iterator[None]:
    """One local Ray for the module, started after the S3 settings are in the environment."""
    from piiblur.engines.ray import forwarded_env

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": forwarded_env()})
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_blurs_a_bucket_prefix_into_another(cluster: None, s3: S3, tmp_path: Path, empty_scene: np.ndarray):
    src, dst = s3.bucket(), s3.bucket()
    files = put_tree(s3, src, "photos", empty_scene)
    report = tmp_path / "r.json"
    code = _cli("--engine", "ray", f"s3://{src}/photos", f"s3://{dst}/blurred", "-q", "--report", report)
    assert code == 1  # the broken JPEG
    check_blurred_tree(s3, files, dst, "blurred")
    statuses = {f["source"]: f["status"] for f in json.loads(report.read_text())["files"]}
    assert statuses == {"portrait.jpg": "blurred", "sub/deeper/empty.jpg": "copied", "sub/broken.jpg": "failed"}
    # resumed on the cluster: only what is left
    assert _cli("--engine", "ray", f"s3://{src}/photos", f"s3://{dst}/blurred", "-q", "--report", report) == 1
    statuses = {f["source"]: f["status"] for f in json.loads(report.read_text())["files"]}
    assert statuses == {"portrait.jpg": "skipped", "sub/deeper/empty.jpg": "skipped", "sub/broken.jpg": "failed"}


def test_ray_and_local_engines_write_the_same_files(cluster: None, tmp_path: Path, portrait: np.ndarray,
                                                     empty_scene: np.ndarray):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    Image.fromarray(portrait).save(src / "sub" / "portrait.png")
    Image.fromarray(np.roll(portrait, 40, axis=1)).save(src / "sub" / "rolled.png")
    Image.fromarray(empty_scene).save(src / "empty.jpg", quality=90)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert _cli(src, local, "-j", "1", "-q") == 0
    assert _cli("--engine", "ray", src, on_ray, "-q") == 0
    def images(folder: Path) -> list[str]:  # the manifest in .pii-blur aside
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                      if p.is_file() and ".pii-blur" not in p.parts)

    written = images(local)
    assert written == images(on_ray)
    assert len(written) == 4
    for rel in written:
        assert (on_ray / rel).read_bytes() == (local / rel).read_bytes(), rel
    assert detail(np.asarray(Image.open(on_ray / "portrait.jpg")), FACE_BOX) < 0.05 * detail(portrait, FACE_BOX)
    assert (on_ray / "empty.jpg").stat().st_mtime == (src / "empty.jpg").stat().st_mtime


def test_an_image_over_the_time_limit_fails_alone_on_the_cluster(cluster: None, tmp_path: Path,
                                                                 portrait: np.ndarray):
    """An actor still on one image after --time-limit is killed (not restarted with the same image) and a
    fresh one takes its place: that image fails with one line, the others are blurred."""
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(portrait, 30 * i, axis=1)).save(src / f"p{i}.png")
    ys = np.linspace(0, 255, 9000, dtype=np.float32)
    big = np.broadcast_to(ys[:, None, None], (9000, 9000, 3)).astype(np.uint8)  # 81 megapixels: many seconds
    Image.fromarray(big).save(src / "big.png", compress_level=1)
    assert _cli("--engine", "ray", src, out, "-q", "--time-limit", "4", "--report", report) == 1
    files = {f["source"]: f for f in json.loads(report.read_text())["files"]}
    assert {name: f["status"] for name, f in files.items()} == {
        "big.png": "failed", "p0.png": "blurred", "p1.png": "blurred", "p2.png": "blurred"}
    assert "time limit" in files["big.png"]["reason"]
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["p0.png", "p1.png", "p2.png"]
