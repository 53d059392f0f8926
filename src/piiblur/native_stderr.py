"""What C libraries (libjpeg, libtiff, libpng, libwebp) print straight to file descriptor 2.

Their warnings ("Corrupt JPEG data: 1 extraneous bytes before marker 0xdb",
"LZWDecode: Not enough data at scanline 0") bypass Python's ``sys.stderr``.
Collected here they become the file's notes in the report, instead of stray
lines in the middle of the progress bar that no one can tie to a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

MAX_KEPT = 64 * 1024  # bytes of captured text kept per image: a decoder that warns per scanline is cut short


@contextlib.contextmanager
def captured(lines: list[str]) -> Iterator[None]:
    """Send fd 2 to a temporary file while the block runs; append its distinct lines to ``lines``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(MAX_KEPT).decode("utf-8", "replace")
            lines.extend(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
