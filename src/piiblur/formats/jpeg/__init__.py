"""JPEG (and MPO) writer: no generation loss, the input's metadata segments byte for byte.

``coefficients``: the lossless path, the input's DCT coefficients kept but in the MCUs that hold a
changed pixel. ``reencode``: where no lossless path exists (no jpegtran for CMYK, unreadable
coefficients), the whole picture re-encoded with Pillow at the input's tables, sampling, progressive
mode and restart interval, and the notes say so. ``splicing``: the input's APPn and COM segments put
back, scrubbed. ``markers``: the marker table and the walk through a stream's segments.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from piiblur import native_stderr
from piiblur.formats import Encoded, SourceImage
from piiblur.formats._scrub import Scrub
from piiblur.formats.jpeg.coefficients import NotTransplantable, changed_mcus, shows_what_was_searched, transplant
from piiblur.formats.jpeg.markers import header_segments, image_end, scan_count
from piiblur.formats.jpeg.reencode import estimate_quality, reencode
from piiblur.formats.jpeg.splicing import extended_xmp, splice

FORMATS = ("JPEG", "MPO")

__all__ = ["FORMATS", "MAX_SCANS", "NotTransplantable", "changed_mcus", "encode", "estimate_quality", "extended_xmp",
           "header_segments", "image_end", "reencode", "refused", "stream_warnings", "transplant"]

# No encoder writes more than a few dozen scans (libjpeg's progressive script: 10 for colour; MozJPEG's
# optimised ones a few more), but libjpeg decodes as many as a file holds, each over the whole picture:
# 20,000 scans of 24 bytes made a 0.5 MB file of 8 megapixels take 38 s in pii-blur (0.07 s without them),
# and at 300 megapixels each scan costs about 30 ms. Such a file is refused before any decoder sees it.
MAX_SCANS = 500


def refused(data: bytes) -> str | None:
    """Why the stream is refused before it is decoded, or None."""
    try:
        scans = scan_count(data)
    except (ValueError, IndexError, struct.error):  # not walkable: the decoder says what is wrong with it
        return None
    if scans > MAX_SCANS:
        return (f"a JPEG of {scans:,} scans (at most {MAX_SCANS} are read: libjpeg decodes the whole picture "
                "again for each, so such a file would take minutes to hours)")
    return None


def stream_warnings(data: bytes) -> list[str]:
    """What libjpeg warns of when it reads the whole stream, at an eighth of the size (every coefficient
    is still read; a tenth of a full decode). Pillow's decoder stops once it has the rows the frame header
    declares and warns of nothing, so a scan that goes on past them (a face in rows that two patched bytes
    of the header show: "extraneous bytes before marker 0xd9") or data that other decoders recover from
    differently would pass as seen."""
    import cv2

    warned: list[str] = []
    with native_stderr.captured(warned):
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return warned


def encode(source: SourceImage, pixels: np.ndarray) -> Encoded:
    warned: list[str] = []
    try:
        with native_stderr.captured(warned):
            fresh, notes = transplant(source, pixels)
        # a damaged stream (libjpeg warned) or a progressive one (it may end before its last scans, without
        # a warning) is checked: its coefficients must show the picture as it was searched
        progressive = source.image.info.get("progressive") or source.image.info.get("progression")
        if (warned or progressive) and not shows_what_was_searched(fresh, source, pixels):
            raise NotTransplantable("the input's stream is damaged or incomplete, and its coefficients written "
                                    "back would not show the picture as it was decoded and searched")
    except NotTransplantable as why:
        fresh, notes = reencode(source, pixels)
        notes.append(f"whole picture re-encoded: {why}")
    notes.extend(f"libjpeg warned: {line}" for line in warned)
    # made only now, for the metadata's thumbnails: while the coefficients are read and written, a copy of
    # the picture in Pillow (4 bytes a pixel) would add to the peak memory of a worker
    picture = Image.fromarray(pixels, source.mode)
    data, spliced = splice(source.data, fresh, Scrub(picture), picture.mode, getattr(source.image, "n_frames", 1))
    return Encoded(data, notes + spliced)
