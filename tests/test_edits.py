"""Edits and ``pii-blur apply``: rejected regions come back, added boxes are blurred, nothing else moves."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jpeglib
import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, PLATE_BOX, detail
from PIL import Image

from piiblur.cli import main
from piiblur.edits import ImageEdits, _mcu_any, apply_one, footprint, load_edits
from piiblur.pipeline import Settings
from piiblur.sphere import Equirect

GPANO_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             b'<rdf:Description xmlns:GPano="http://ns.google.com/photos/1.0/panorama/" '
             b'GPano:ProjectionType="equirectangular"/></rdf:RDF></x:xmpmeta>')


def _coefficients(path: Path) -> list[np.ndarray]:
    jpeg = jpeglib.read_dct(str(path))
    jpeg.load()
    return [np.array(c) for c in (jpeg.Y, jpeg.Cb, jpeg.Cr) if c is not None]


def _changed_blocks(a: Path, b: Path) -> np.ndarray:
    """Boolean (block rows, block columns) of the luma grid: blocks whose coefficients differ in any component
    (chroma blocks spread over the luma blocks they cover)."""
    ca, cb = _coefficients(a), _coefficients(b)
    rows, cols = ca[0].shape[:2]
    changed = np.zeros((rows, cols), bool)
    for x, y in zip(ca, cb, strict=True):
        diff = (x != y).any(axis=(2, 3))
        fy, fx = -(-rows // diff.shape[0]), -(-cols // diff.shape[1])
        changed |= np.repeat(np.repeat(diff, fy, axis=0), fx, axis=1)[:rows, :cols]
    return changed


def _blocks_of(box: tuple[float, float, float, float], margin: int = 0) -> tuple[slice, slice]:
    x1, y1, x2, y2 = box
    return slice(max(0, int(y1) // 8 - margin), int(y2) // 8 + 1 + margin), slice(max(0, int(x1) // 8 - margin),
                                                                                int(x2) // 8 + 1 + margin)


@pytest.fixture(scope="module")
def blurred(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("edits")
    (root / "in").mkdir()
    shutil.copy(EXAMPLE, root / "in" / "portrait.jpg")
    assert main([str(root / "in"), str(root / "out"), "-q", "-j", "1", "--report", str(root / "report.json")]) == 0
    report = json.loads((root / "report.json").read_text())
    return root / "in", root / "out", report["files"][0]


def test_reject_restores_the_input_and_add_blurs_losslessly(blurred, tmp_path: Path) -> None:
    src, out, entry = blurred
    before = tmp_path / "before.jpg"
    shutil.copy(out / "portrait.jpg", before)
    dets = entry["detections"]
    plate = next(i for i, d in enumerate(dets) if d["class"] == "plate")
    added = (40, 40, 100, 110)  # the flag: nothing was found there
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "images": {"portrait.jpg": {
        "detections": dets, "rejected": [plate], "added": [{"class": "face", "box": list(added)}]}}}))
    work = tmp_path / "out"
    shutil.copytree(out, work)
    assert main(["apply", str(src), str(work), "--edits", str(edits)]) == 0
    after = work / "portrait.jpg"

    # the rejected plate: its blocks are the input's again, coefficient for coefficient
    plate_blocks = _blocks_of(PLATE_BOX)
    assert not _changed_blocks(src / "portrait.jpg", after)[plate_blocks].any()
    assert _changed_blocks(src / "portrait.jpg", before)[plate_blocks].any()
    # the kept face: untouched since the first run
    assert not _changed_blocks(before, after)[_blocks_of(FACE_BOX)].any()
    # the added box: blurred
    new, old = np.asarray(Image.open(after).convert("RGB")), np.asarray(Image.open(before).convert("RGB"))
    assert detail(new, added) < 0.2 * detail(old, added)
    # everything else: the same coefficients as before
    changed = _changed_blocks(before, after)
    allowed = np.zeros_like(changed)
    allowed[_blocks_of(PLATE_BOX, margin=4)] = True
    allowed[_blocks_of(added, margin=6)] = True
    assert changed.any() and not (changed & ~allowed).any()
    # the metadata came through (EXIF with its GPS)
    assert Image.open(after).getexif().get_ifd(0x8825)


def _panorama(path: Path) -> np.ndarray:
    rng = np.random.default_rng(3)
    base = rng.integers(40, 215, (32, 64, 3)).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(base).resize((512, 256), Image.BICUBIC))
    Image.fromarray(rgb).save(path, "JPEG", quality=92, xmp=GPANO_XMP)
    return rgb


def test_a_box_across_the_seam_is_blurred_on_both_sides_and_rejected_again(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _panorama(src / "pano.jpg")
    shutil.copy(src / "pano.jpg", out / "pano.jpg")  # nothing found: the copy
    box = [480.0, 100.0, 544.0, 150.0]  # x runs past the right edge: 480-512 and 0-32
    settings = Settings()
    data, notes = apply_one((src / "pano.jpg").read_bytes(), (out / "pano.jpg").read_bytes(),
                            ImageEdits(added=[{"class": "plate", "box": box}]), settings, "pano.jpg")
    (out / "pano.jpg").write_bytes(data)
    assert any("added" in n for n in notes)
    raw = np.asarray(Image.open(src / "pano.jpg").convert("RGB"))
    new = np.asarray(Image.open(out / "pano.jpg").convert("RGB"))
    for part in ((484, 110, 510, 140), (2, 110, 28, 140)):  # both sides of the seam
        assert detail(new, part) < 0.2 * detail(raw, part)
    changed = _changed_blocks(src / "pano.jpg", out / "pano.jpg")
    assert changed[:, 12:52].sum() == 0 and changed[:6].sum() == 0  # far from the box: the input's blocks
    assert changed[:, :4].any() and changed[:, 56:].any()
    assert "equirectangular" in Image.open(out / "pano.jpg").info.get("xmp", b"").decode()

    # rejecting that box again gives the input's coefficients back everywhere
    record = {"class": "plate", "score": 1.0, "box": box}
    data, _ = apply_one((src / "pano.jpg").read_bytes(), data, ImageEdits([record], [0], []), settings, "pano.jpg")
    (out / "again.jpg").write_bytes(data)
    assert not _changed_blocks(src / "pano.jpg", out / "again.jpg").any()


def test_footprint_of_a_seam_box_wraps() -> None:
    from piiblur.edits import _records_to_detections

    geo = Equirect(512, 256, 512, 256)
    dets = _records_to_detections([{"class": "face", "box": [490, 100, 530, 140]}], geo)
    mask = footprint(dets, (256, 512), geo, 1.0)
    assert mask[120, 500] and mask[120, 10] and not mask[120, 256]
    assert _mcu_any(mask, (16, 16)).shape == (16, 32)


def test_png_edits_restore_exact_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    out = raw.copy()
    out[20:60, 30:70] = 128  # stands for a blurred detection
    buf_in, buf_out = io.BytesIO(), io.BytesIO()
    Image.fromarray(raw).save(buf_in, "PNG")
    Image.fromarray(out).save(buf_out, "PNG")
    record = {"class": "plate", "score": 0.9, "box": [34.0, 26.0, 66.0, 54.0]}
    data, _ = apply_one(buf_in.getvalue(), buf_out.getvalue(), ImageEdits([record], [0], []), Settings(), "x.png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), raw)


def test_edits_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "edits.json"
    assert load_edits(path) == {}
    path.write_text(json.dumps({"images": {"a.jpg": {"detections": [], "rejected": [0]}}}))
    with pytest.raises(ValueError, match="rejected"):
        load_edits(path)
    path.write_text(json.dumps({"images": {"a.jpg": {"added": [{"class": "face", "box": [5, 5, 1, 1]}]}}}))
    with pytest.raises(ValueError, match="added"):
        load_edits(path)


def test_rejecting_a_panorama_detection_by_its_place_gives_the_input_back(portrait: np.ndarray,
                                                                          tmp_path: Path) -> None:
    from piiblur import synthetic as syn

    geo = Equirect(1024, 512, 1024, 512)
    pano = np.full((512, 1024, 3), 120, np.uint8)
    syn.place(pano, geo, syn.cut(portrait, FACE_BOX, 60, 50), yaw=178.0, pitch=-10.0, size=60)  # at the seam
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(pano).save(src / "pano.jpg", quality=92, xmp=GPANO_XMP)
    assert main([str(src), str(tmp_path / "out"), "-q", "-j", "1", "--report", str(tmp_path / "r.json")]) == 0
    dets = json.loads((tmp_path / "r.json").read_text())["files"][0]["detections"]
    assert [d["class"] for d in dets] == ["face"] and "sphere" in dets[0]
    blurred = tmp_path / "out" / "pano.jpg"
    assert _changed_blocks(src / "pano.jpg", blurred).any()
    data, _ = apply_one((src / "pano.jpg").read_bytes(), blurred.read_bytes(), ImageEdits(dets, [0], []),
                        Settings(), "pano.jpg")
    (tmp_path / "back.jpg").write_bytes(data)
    assert not _changed_blocks(src / "pano.jpg", tmp_path / "back.jpg").any()


def test_boxes_are_in_the_upright_picture_of_a_turned_jpeg(portrait: np.ndarray, tmp_path: Path) -> None:
    stored = np.ascontiguousarray(np.rot90(portrait, 1))  # orientation 6: turn 90 degrees clockwise to show
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    from PIL import ImageOps

    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))).convert("RGB"))
    assert upright.shape == portrait.shape
    data, _ = apply_one(buf.getvalue(), buf.getvalue(), ImageEdits(added=[{"class": "plate", "box": list(PLATE_BOX)}]),
                        Settings(), "turned.jpg")
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert detail(shown, PLATE_BOX) < 0.2 * detail(upright, PLATE_BOX)
    assert detail(shown, FACE_BOX) == pytest.approx(detail(upright, FACE_BOX), rel=0.02)


def test_a_written_rejection_accepted_again_is_blurred_again(blurred, tmp_path: Path) -> None:
    from piiblur.edits import apply_edits, revised

    src, out, entry = blurred
    work = tmp_path / "out"
    shutil.copytree(out, work)
    dets = entry["detections"]
    plate = next(i for i, d in enumerate(dets) if d["class"] == "plate")
    edits = {"portrait.jpg": revised(None, ImageEdits(dets, [plate], []))}
    assert [r.status for r in apply_edits(src, work, edits, Settings())] == ["written"]
    assert edits["portrait.jpg"].restored == [plate]
    restored = np.asarray(Image.open(work / "portrait.jpg").convert("RGB"))
    raw = np.asarray(Image.open(src / "portrait.jpg").convert("RGB"))
    assert detail(restored, PLATE_BOX) == pytest.approx(detail(raw, PLATE_BOX), rel=0.05)
    # accepted again, then the box that stands for it deleted: it comes back, and apply blurs it
    again = revised(edits["portrait.jpg"], ImageEdits(dets, [], []))
    assert [a.get("from_detection") for a in again.added] == [plate]
    again = revised(again, ImageEdits(dets, [], []))
    assert len(again.added) == 1
    # rejected once more before applying: the stand-in goes
    assert not revised(again, ImageEdits(dets, [plate], again.added)).added
    edits["portrait.jpg"] = again
    assert [r.status for r in apply_edits(src, work, edits, Settings())] == ["written"]
    blurred_again = np.asarray(Image.open(work / "portrait.jpg").convert("RGB"))
    assert detail(blurred_again, PLATE_BOX) < 0.2 * detail(raw, PLATE_BOX)
    assert edits["portrait.jpg"].restored == []


def test_a_rejection_in_a_jpeg_with_an_empty_comment_restores_it(tmp_path: Path) -> None:
    """The restoring path reads input and output with jpeglib too, whose marker reader corrupts its heap on an
    APPn or COM segment that holds nothing (valid JPEG): it is given both without it."""
    data = EXAMPLE.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(data[:2] + b"\xff\xfe\x00\x02" + data[2:])

    def run(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "piiblur", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    run(str(tmp_path / "in"), str(tmp_path / "out"), "-j", "1", "--report", str(tmp_path / "report.json"))
    dets = json.loads((tmp_path / "report.json").read_text())["files"][0]["detections"]
    plate = next(i for i, d in enumerate(dets) if d["class"] == "plate")
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "images": {"a.jpg": {"detections": dets, "rejected": [plate]}}}))
    blurred = np.asarray(Image.open(tmp_path / "out" / "a.jpg").convert("RGB"))
    run("apply", str(tmp_path / "in"), str(tmp_path / "out"), "--edits", str(edits))
    restored = np.asarray(Image.open(tmp_path / "out" / "a.jpg").convert("RGB"))
    raw = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    assert detail(blurred, PLATE_BOX) < 0.2 * detail(raw, PLATE_BOX)
    assert detail(restored, PLATE_BOX) == pytest.approx(detail(raw, PLATE_BOX), rel=0.05)
    assert (tmp_path / "out" / "a.jpg").read_bytes()[2:6] == b"\xff\xfe\x00\x02"
