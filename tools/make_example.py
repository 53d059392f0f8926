"""Make ``examples/street_portrait.jpg``, the picture the Quick start blurs.

It is the portrait of astronaut Eileen Collins that scikit-image ships
(``skimage/data/astronaut.png``; a NASA photograph, public domain) with a
synthetic licence plate drawn into its lower left corner, saved as a JPEG with
EXIF (camera make, a GPS position) so that a user can see the metadata survive.

    python tools/make_example.py            # fetches scikit-image 0.26.0 from PyPI
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SOURCE = "scikit-image==0.26.0"
OUT = Path(__file__).resolve().parent.parent / "examples" / "street_portrait.jpg"


def draw_plate(rgb: np.ndarray, x: int, y: int, text: str = "AB 123 CD", w: int = 120, h: int = 30) -> None:
    """A white European-style plate with a black frame and black characters."""
    cv2.rectangle(rgb, (x, y), (x + w, y + h), (245, 245, 245), -1)
    cv2.rectangle(rgb, (x, y), (x + w, y + h), (0, 0, 0), 2)
    cv2.putText(rgb, text, (x + 6, y + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.56, (0, 0, 0), 2, cv2.LINE_AA)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp,
                        SOURCE], check=True)
        wheel = next(Path(tmp).glob("scikit_image-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            rgb = np.array(Image.open(io.BytesIO(zf.read("skimage/data/astronaut.png"))).convert("RGB"))
    draw_plate(rgb, 20, 440)
    exif = Image.Exif()
    exif[0x010F] = "pii-blur example"  # Make
    exif[0x0110] = "astronaut + synthetic plate"  # Model
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 3.36), 3: "E", 4: (4.0, 54.0, 14.76)})
    OUT.parent.mkdir(exist_ok=True)
    Image.fromarray(rgb).save(OUT, quality=90, exif=exif)
    print(OUT)


if __name__ == "__main__":
    main()
