"""``pii-blur evaluate``: recall of labelled boxes on the example, through the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import EXAMPLE, FACE_BOX, PLATE_BOX

from piiblur.cli import main

pytestmark = pytest.mark.slow  # loads the nets


def test_evaluate_finds_the_labelled_face_and_plate_of_the_example(tmp_path: Path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(EXAMPLE, images / EXAMPLE.name)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({EXAMPLE.name: [{"class": "face", "box": list(FACE_BOX)},
                                                 {"class": "plate", "box": list(PLATE_BOX)}]}))
    figures = tmp_path / "figures.json"
    assert main(["evaluate", str(images), "--labels", str(labels), "--json", str(figures)]) == 0
    found = {(row["class"], row["size"]): (row["protected"], row["labelled"])
             for row in json.loads(figures.read_text())["recall"]}
    assert found[("face", "all")] == (1, 1) and found[("plate", "all")] == (1, 1)
    table = capsys.readouterr().out
    assert "face   all" in table and "100.0%" in table and "1 images in" in table
