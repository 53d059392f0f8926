"""The review server without a browser: what it serves, what it refuses, what it writes."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from helpers import EXAMPLE
from PIL import Image

from piiblur.pipeline import Settings
from piiblur.review.server import Review, start

VENDOR = Path(__file__).resolve().parent.parent / "src" / "piiblur" / "review" / "static" / "vendor" / "pannellum"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Review, Path]]:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (out / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLE, src / "portrait.jpg")
    shutil.copy(EXAMPLE, out / "portrait.jpg")
    for n in range(30):
        Image.fromarray(np.full((8, 16, 3), n, np.uint8)).save(out / "sub" / f"p{n:02d}.png")
    (out / "notes.txt").write_text("secret")
    (tmp_path / "outside.jpg").write_bytes(EXAMPLE.read_bytes())
    report = {"files": [{"source": "portrait.jpg", "width": 512, "height": 512, "orientation": 1,
                         "projection": "planar",
                         "detections": [{"class": "face", "score": 0.9, "box": [175.0, 54.0, 275.0, 180.0]}]}]}
    review = Review(src, out, Settings(), report, None, tmp_path / "report.edits.json")
    server, url = start(review)
    try:
        yield url, review, tmp_path
    finally:
        server.shutdown()


def _request(url: str, path: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read()


def test_it_listens_on_loopback_behind_a_token(served) -> None:
    url, _review, _ = served
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    token = parts.path.strip("/")
    assert len(token) >= 24
    assert _request(url, parts.path)[0] == 200
    assert _request(url, "/")[0] == 404
    assert _request(url, "/" + token[:-1] + "x/")[0] == 404
    assert _request(url, parts.path, headers={"Host": f"evil.example:{parts.port}"})[0] == 403


@pytest.mark.parametrize("name", ["../outside.jpg", "..%2Foutside.jpg", "%2E%2E/outside.jpg", "notes.txt",
                                  "/etc/passwd", "sub/../../outside.jpg", "portrait.jpg%00.png", ".pii-blur/x.jpg"])
def test_only_images_inside_the_roots_are_served(served, name: str) -> None:
    url, _, _ = served
    path = urlsplit(url).path
    status, _ = _request(url, f"{path}file/output/{name}")
    assert status in (403, 404)
    status, _ = _request(url, f"{path}file/input/{name}")
    assert status in (403, 404)


def test_a_symlink_out_of_the_output_is_refused(served) -> None:
    url, review, tmp_path = served
    (review.output_root / "leak.jpg").symlink_to(tmp_path / "outside.jpg")
    assert _request(url, f"{urlsplit(url).path}file/output/leak.jpg")[0] == 403


def test_images_are_served_and_listed_a_page_at_a_time(served) -> None:
    url, _, _ = served
    path = urlsplit(url).path
    status, body = _request(url, f"{path}file/output/portrait.jpg")
    assert status == 200 and body == EXAMPLE.read_bytes()
    status, body = _request(url, f"{path}api/images?offset=0&limit=10")
    page = json.loads(body)
    assert page["total"] == 31 and len(page["images"]) == 10
    assert page["images"][0]["name"] == "portrait.jpg" and page["images"][0]["faces"] == 1
    later = json.loads(_request(url, f"{path}api/images?offset=30&limit=10")[1])
    assert [i["name"] for i in later["images"]] == ["sub/p29.png"]
    info = json.loads(_request(url, f"{path}api/image?name=sub/p03.png")[1])
    assert (info["width"], info["height"], info["projection"], info["has_input"]) == (16, 8, "planar", False)


def test_edits_are_saved_as_they_are_made_and_posts_are_checked(served) -> None:
    url, review, tmp_path = served
    path = urlsplit(url).path
    body = json.dumps({"name": "portrait.jpg", "rejected": [0], "added": [{"class": "plate", "box": [1, 2, 30, 20]}]})
    json_type = {"Content-Type": "application/json"}
    assert _request(url, f"{path}api/edits", "POST", body.encode(), {"Content-Type": "text/plain"})[0] == 415
    assert _request(url, f"{path}api/edits", "POST", body.encode(),
                    {**json_type, "Origin": "http://evil.example"})[0] == 403
    assert _request(url, "/api/edits", "POST", body.encode(), json_type)[0] == 404  # no token
    status, _ = _request(url, f"{path}api/edits", "POST", body.encode(), json_type)
    assert status == 200
    saved = json.loads((tmp_path / "report.edits.json").read_text())
    entry = saved["images"]["portrait.jpg"]
    assert entry["rejected"] == [0] and entry["added"][0]["box"] == [1, 2, 30, 20]
    assert entry["detections"][0]["class"] == "face"
    bad = json.dumps({"name": "portrait.jpg", "rejected": [5], "added": []}).encode()
    assert _request(url, f"{path}api/edits", "POST", bad, json_type)[0] == 400
    outside = json.dumps({"name": "../outside.jpg", "rejected": [], "added": []}).encode()
    assert _request(url, f"{path}api/edits", "POST", outside, json_type)[0] == 403
    # a new server finds the edits again
    assert Review(review.input_root, review.output_root, Settings(), None, None,
                  tmp_path / "report.edits.json").edits["portrait.jpg"].rejected == [0]


def test_the_viewer_is_the_vendored_npm_build() -> None:
    provenance = (VENDOR / "PROVENANCE.md").read_text()
    for name in ("pannellum.js", "pannellum.css", "LICENSE"):
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert re.search(rf"`{re.escape(name)}`.*`{digest}`", provenance), name
    assert "Permission is hereby granted, free of charge" in (VENDOR / "LICENSE").read_text()  # MIT
    assert (VENDOR / "pannellum.js").read_text().startswith("// Pannellum 2.5.7")


def test_formats_browsers_cannot_show_come_as_a_jpeg_preview(served) -> None:
    url, review, _ = served
    Image.fromarray(np.full((10, 20, 3), 200, np.uint8)).save(review.output_root / "scan.tif")
    status, body = _request(url, f"{urlsplit(url).path}file/output/scan.tif")
    assert status == 200 and body[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(body)).size == (20, 10)


def test_apply_writes_only_what_is_pending(served) -> None:
    url, review, tmp_path = served
    path, json_type = urlsplit(url).path, {"Content-Type": "application/json"}
    body = json.dumps({"name": "portrait.jpg", "rejected": [], "added": [{"class": "face", "box": [20, 20, 80, 90]}]})
    assert _request(url, f"{path}api/edits", "POST", body.encode(), json_type)[0] == 200
    status, answer = _request(url, f"{path}api/apply", "POST", b"{}", json_type)
    assert status == 200 and [r["status"] for r in json.loads(answer)["results"]] == ["written"]
    assert json.loads(_request(url, f"{path}api/apply", "POST", b"{}", json_type)[1])["results"] == []
    saved = json.loads((tmp_path / "report.edits.json").read_text())["images"]["portrait.jpg"]
    assert saved["added"][0]["applied"] is True
    assert (review.input_root / "portrait.jpg").read_bytes() == EXAMPLE.read_bytes()  # the input untouched
