"""Generation loss: blur the same JPEG five times in a row (each output is the next input).

Outside the blurred MCUs every DCT coefficient must equal the first input's, every time, and the file size
must drift by under 1% from one generation to the next. Uses a photo from ../shared/data when present,
otherwise one made here (so it always runs).

    .venv/bin/python benchmarks/generation_loss.py [JPEG]
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import jpeglib
import numpy as np
from PIL import Image

from piiblur.formats import encode_image, read_image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "data" / "metadata_and_formats" / "exif_samples" / "jpg" / "gps" / "DSCN0010.jpg"


def coefficients(data: bytes) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jpg"
        path.write_bytes(data)
        jpeg = jpeglib.read_dct(str(path))
        jpeg.load()
        return [c.copy() for c in (jpeg.Y, jpeg.Cb, jpeg.Cr) if c is not None]


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if path.is_file():
        data = path.read_bytes()
        print(f"input: {path}")
    else:
        print(f"shared data not found ({path}); using a made-up 640x480 picture")
        y, x = np.mgrid[0:480, 0:640]
        rgb = np.dstack([128 + 100 * np.sin(x / 9), 128 + 100 * np.cos(y / 7), 128 + 60 * np.sin((x + y) / 13)])
        out = io.BytesIO()
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(out, format="JPEG", quality=85)
        data = out.getvalue()
    first = coefficients(data)
    sizes = [len(data)]
    worst_drift, all_identical = 0.0, True
    with tempfile.TemporaryDirectory() as tmp:
        current = Path(tmp) / "gen0.jpg"
        current.write_bytes(data)
        for generation in range(1, 6):
            source = read_image(current)
            pixels = source.pixels.copy()
            h, w = pixels.shape[:2]
            box = (slice(h // 4, h // 2), slice(w // 4, w // 2))  # the same region each time, hidden again
            # a flat fill (the region's mean): hiding an already hidden region changes nothing, so any drift
            # comes from the writer, not from the picture getting ever smoother as a repeated blur would
            pixels[box] = pixels[box].reshape(-1, pixels.shape[2]).mean(axis=0).round().astype(np.uint8)
            encoded = encode_image(source, pixels)
            now = coefficients(encoded.data)
            # blocks outside the blurred box (with a 16-pixel MCU margin) must be the first input's
            same = True
            for index, (a, b) in enumerate(zip(first, now, strict=True)):
                scale_y, scale_x = a.shape[0] * 8 / h, a.shape[1] * 8 / w
                keep = np.ones(a.shape[:2], bool)
                keep[int(h // 4 * scale_y) // 8 - 2:int(h // 2 * scale_y) // 8 + 2,
                     int(w // 4 * scale_x) // 8 - 2:int(w // 2 * scale_x) // 8 + 2] = False
                same &= bool(np.array_equal(a[keep], b[keep]))
                del index
            drift = len(encoded.data) / sizes[-1] - 1
            if generation > 1:
                worst_drift = max(worst_drift, abs(drift))
            all_identical &= same
            sizes.append(len(encoded.data))
            print(f"generation {generation}: {len(encoded.data):>8} bytes ({drift:+.3%} on the previous), "
                  f"coefficients outside the blur {'identical' if same else 'CHANGED'} to the input's; "
                  f"{encoded.notes[0]}")
            current = Path(tmp) / f"gen{generation}.jpg"
            current.write_bytes(encoded.data)
    verdict = all_identical and worst_drift < 0.01
    print(f"worst size drift between generations 1-5: {worst_drift:.3%}; "
          f"{'PASS' if verdict else 'FAIL'} (identical outside the blur, drift under 1%)")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
