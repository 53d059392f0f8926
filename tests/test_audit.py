"""``pii-blur audit``: what is left in finished output, with small pictures made here."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX
from PIL import Image
from test_edits import GPANO_XMP
from test_formats import exif_block, insert_segments, segment

from piiblur.audit import detail, is_blurred
from piiblur.blur import blur
from piiblur.cli import main
from piiblur.detections import Detections
from piiblur.formats._exif import EXIF_HEADER


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def blurred_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pii-blur's own output of the example portrait (a face and a plate)."""
    root = tmp_path_factory.mktemp("audit")
    (root / "in").mkdir()
    shutil.copy(EXAMPLE, root / "in" / "portrait.jpg")
    assert _cli(root / "in", root / "out", "-q", "-j", "1") == 0
    return root / "out" / "portrait.jpg"


def test_detail_tells_a_blurred_box_from_a_sharp_one(portrait: np.ndarray) -> None:
    face = Detections.of_class(np.array([FACE_BOX], np.float32), np.array([0.9]), "face")
    sharp = detail(portrait, FACE_BOX)
    soft = detail(blur(portrait, face), FACE_BOX)
    assert not is_blurred(*sharp)
    assert is_blurred(*soft)
    assert soft[0] < 0.1 * sharp[0] and soft[2] > 0.5 > sharp[2]  # detail gone inside
    assert soft[1] == pytest.approx(sharp[1], rel=0.05)  # the surroundings untouched


def test_detail_wraps_across_a_panorama_seam() -> None:
    rng = np.random.default_rng(1)
    pano = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(pano, (0, 0), 6)
    pano[20:44, :8] = smooth[20:44, :8]
    pano[20:44, -8:] = smooth[20:44, -8:]
    inside, around, share = detail(pano, (120, 24, 136, 40), wraps=True)  # runs past the right edge
    assert is_blurred(inside, around, share) and around > 50
    assert not is_blurred(*detail(pano, (100, 24, 116, 40), wraps=True))


def test_audit_lists_the_face_in_an_unblurred_picture(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "portrait.jpg")
    (folder / ".hidden.jpg").write_bytes(b"not looked at")
    report, sheet = tmp_path / "audit.json", tmp_path / "left.png"
    assert _cli("audit", folder, "--report", report, "--contact-sheet", sheet) == 1
    out = capsys.readouterr().out
    assert "portrait.jpg: picture: face" in out
    data = json.loads(report.read_text())
    assert not data["clean"] and data["summary"]["images"] == 1
    faces = [f for f in data["findings"] if f["cls"] == "face"]
    assert faces and faces[0]["file"] == "portrait.jpg" and faces[0]["where"] == "picture"
    x1, y1, x2, y2 = faces[0]["box"]
    assert FACE_BOX[0] - 20 < (x1 + x2) / 2 < FACE_BOX[2] + 20 and FACE_BOX[1] - 20 < (y1 + y2) / 2 < FACE_BOX[3]
    assert data["thresholds"]["face"] < 0.3  # lower than blurring's
    assert Image.open(sheet).size[0] >= 160


def test_audit_passes_pii_blurs_own_output(blurred_example: Path, tmp_path: Path) -> None:
    report, sheet = tmp_path / "audit.json", tmp_path / "left.png"
    assert _cli("audit", blurred_example.parent, "--report", report, "--contact-sheet", sheet) == 0
    data = json.loads(report.read_text())
    assert data["clean"] and not data["findings"]
    assert not sheet.exists()  # nothing left, no sheet


def test_audit_flags_an_unblurred_exif_thumbnail(blurred_example: Path, tmp_path: Path) -> None:
    thumb = io.BytesIO()
    Image.open(EXAMPLE).convert("RGB").resize((160, 160)).save(thumb, "JPEG", quality=95)
    folder = tmp_path / "leaky"
    folder.mkdir()
    data = insert_segments(blurred_example.read_bytes(), [segment(0xE1, EXIF_HEADER + exif_block(thumb.getvalue()))])
    (folder / "portrait.jpg").write_bytes(data)
    report = tmp_path / "audit.json"
    assert _cli("audit", folder, "--report", report, "-q") == 1
    found = json.loads(report.read_text())["findings"]
    assert found and all("thumbnail" in f["where"] for f in found)
    assert any(f["cls"] == "face" for f in found)


def test_audit_searches_a_turned_picture_as_stored_too(portrait: np.ndarray, tmp_path: Path) -> None:
    """A face upright in the stored grid, upside down under its orientation tag: the audit finds it as
    stored (as a viewer ignoring the tag shows it), draws it in the sheet, and passes pii-blur's output."""
    exif = Image.Exif()
    exif[0x0112] = 3
    folder = tmp_path / "raw"
    folder.mkdir()
    Image.fromarray(portrait).save(folder / "mistagged.jpg", quality=95, exif=exif)
    report, sheet = tmp_path / "audit.json", tmp_path / "left.png"
    assert _cli("audit", folder, "--report", report, "--contact-sheet", sheet, "-q") == 1
    faces = [f for f in json.loads(report.read_text())["findings"]
             if f["cls"] == "face" and f["where"] == "picture as stored"]
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0]["box"]
    assert 175 - 20 < (x1 + x2) / 2 < 275 + 20 and 54 - 20 < (y1 + y2) / 2 < 180 + 20  # the stored grid's
    assert sheet.exists()
    assert _cli(folder, tmp_path / "out", "-q", "-j", "1") == 0
    assert _cli("audit", tmp_path / "out", "--report", report, "-q") == 0


def test_audit_searches_a_two_to_one_photo_whose_edges_do_not_meet_flat_too(portrait: np.ndarray,
                                                                            tmp_path: Path) -> None:
    from test_fail_closed_geometry import _flat_two_to_one

    photo, boxes = _flat_two_to_one(portrait)
    folder = tmp_path / "raw"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "wide.jpg", quality=95)
    report = tmp_path / "audit.json"
    assert _cli("audit", folder, "--report", report, "-q") == 1
    flat = [f for f in json.loads(report.read_text())["findings"] if f["where"] == "picture searched flat"]
    assert len([f for f in flat if f["cls"] == "face"]) == len(boxes)
    assert _cli(folder, tmp_path / "out", "-q", "-j", "1") == 0
    assert _cli("audit", tmp_path / "out", "--report", report, "-q") == 0


def test_audit_fails_closed_on_a_file_it_cannot_read(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "cut.jpg").write_bytes(EXAMPLE.read_bytes()[:1500])
    assert _cli("audit", folder) == 1
    assert "error: cut.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sheet.png", "sheet.bin", "sub/sheet"])
def test_audit_refuses_a_sheet_inside_the_folder(tmp_path: Path, name: str) -> None:
    """The sheet's crops are what may still be faces: whatever its name, not among what is published."""
    with pytest.raises(SystemExit) as stop:
        _cli("audit", tmp_path, "--contact-sheet", tmp_path / name)
    assert stop.value.code == 2


def test_audit_gives_a_panoramas_find_its_place_and_passes_its_blurred_output(portrait: np.ndarray,
                                                                              tmp_path: Path) -> None:
    from piiblur import synthetic as syn
    from piiblur.sphere import Equirect

    geo = Equirect(1024, 512, 1024, 512)
    pano = np.full((512, 1024, 3), 110, np.uint8)
    pano[256:] = 90
    syn.place(pano, geo, syn.cut(portrait, FACE_BOX, 60, 50), yaw=40.0, pitch=5.0, size=60)
    folder = tmp_path / "pano"
    folder.mkdir()
    Image.fromarray(pano).save(folder / "pano.jpg", quality=92, xmp=GPANO_XMP)
    report = tmp_path / "audit.json"
    assert _cli("audit", folder, "--report", report, "-q") == 1
    found = json.loads(report.read_text())["findings"]
    assert [f["cls"] for f in found] == ["face"]
    assert found[0]["sphere"]["yaw"] == pytest.approx(40, abs=3) and found[0]["sphere"]["pitch"] == pytest.approx(
        5, abs=3)
    assert _cli(folder, tmp_path / "out", "-q", "-j", "1") == 0
    assert _cli("audit", tmp_path / "out", "--report", report, "-q") == 0


def test_audit_in_worker_processes_keeps_the_files_order(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    (folder / "b").mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "a.jpg")
    shutil.copy(EXAMPLE, folder / "b" / "c.jpg")
    report = tmp_path / "audit.json"
    assert _cli("audit", folder, "-j", "2", "-q", "--report", report) == 1
    data = json.loads(report.read_text())
    assert [f["file"] for f in data["files"]] == ["a.jpg", "b/c.jpg"]
    assert {f["file"] for f in data["findings"]} == {"a.jpg", "b/c.jpg"}
