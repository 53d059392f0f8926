"""The fallback when no lossless path exists: the whole picture encoded by Pillow at the input's coding."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from piiblur.formats import SourceImage
from piiblur.formats.jpeg.markers import restart_interval

_SAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}

# IJG (libjpeg) standard luminance table, natural order, as Pillow's ``quantization`` lists it
_STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def estimate_quality(quantization: dict[int, list[int]]) -> int:
    """The IJG quality (1-100) whose scaled standard luminance table is closest to table 0."""
    table = np.asarray(quantization[min(quantization)][:64], dtype=np.int64)
    std = np.asarray(_STD_LUMINANCE, dtype=np.int64)
    best, best_err = 50, None
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        expected = np.clip((std * scale + 50) // 100, 1, 255)
        err = int(np.abs(expected - table).sum())
        if best_err is None or err < best_err:
            best, best_err = q, err
    return best

def encoder_options(source: SourceImage, layout: bool = True) -> tuple[dict[str, Any], str]:
    """Pillow's save options that reproduce the input's coding, and a description of them; with
    ``layout`` False, only tables and sampling (progressive mode and restarts left out)."""
    image = source.image
    options: dict[str, Any] = {"format": "JPEG"}
    described = []
    quantization = getattr(image, "quantization", None)
    if quantization:
        options["qtables"] = quantization
        described.append(f"re-encoded at the input's quantisation tables (about quality "
                         f"{estimate_quality(quantization)})")
    else:
        options["quality"] = 90
        described.append("re-encoded at quality 90 (the input's tables were not readable)")
    sampling = JpegImagePlugin.get_sampling(image)
    if sampling != -1:
        options["subsampling"] = sampling
        described.append(f"subsampling {_SAMPLING_NAMES.get(sampling, sampling)}")
    if layout and (image.info.get("progressive") or image.info.get("progression")):
        options["progressive"] = True
        described.append("progressive")
    interval = restart_interval(source.data) if layout else 0
    if interval:
        options["restart_marker_blocks"] = interval
        described.append(f"restart interval {interval}")
    return options, ", ".join(described)

def reencode(source: SourceImage, pixels: np.ndarray) -> tuple[bytes, list[str]]:
    """The whole picture encoded by Pillow at the input's tables, sampling, progressive mode and restarts."""
    options, description = encoder_options(source)
    out = io.BytesIO()
    Image.fromarray(pixels, source.mode).save(out, **options)
    return out.getvalue(), [description]
