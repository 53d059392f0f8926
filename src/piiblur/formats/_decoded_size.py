"""How many bytes compressed picture data decodes to, counted without keeping what it decodes to: zlib
(PNG, TIFF Deflate), LZW (GIF, TIFF) and PackBits (TIFF). The formats' stream checks compare it with what
a header declares (``png``, ``gif`` and ``tiff``'s ``stream_warnings``); counting up to a limit, a small
stream that would decode to gigabytes costs no memory."""

from __future__ import annotations

from typing import Any


def inflated(inflater: Any, data: bytes, limit: int) -> int:
    """Bytes ``data`` inflates to (a ``zlib.decompressobj``, which keeps what is left after the stream),
    counted up to ``limit`` a megabyte at a time."""
    size, pending = 0, data
    while size < limit:
        size += len(inflater.decompress(pending, min(1 << 20, limit - size)))
        pending = inflater.unconsumed_tail
        if not pending:  # all read in; what zlib still holds is at most its window
            return size + len(inflater.flush())
    return size


def packbits(data: bytes, limit: int) -> int:
    """Bytes PackBits data decodes to, counted up to ``limit``."""
    count = pos = 0
    while pos < len(data) and count < limit:
        header = data[pos]
        if header < 128:  # a literal run of header + 1 bytes
            count, pos = count + header + 1, pos + header + 2
        elif header > 128:  # the next byte repeated 257 - header times
            count, pos = count + 257 - header, pos + 2
        else:
            pos += 1
    return count


def lzw(data: bytes, min_code_size: int, limit: int, tiff: bool = False) -> int:
    """Bytes (GIF: pixels) that LZW ``data`` decodes to, counted up to ``limit``, keeping only the length
    of each table entry. GIF: codes least significant bit first, widened when the table fills; TIFF
    (``min_code_size`` 8): most significant bit first, widened one code early. Stops at the end code, at
    the data's end or at a code no decoder takes."""
    clear = 1 << min_code_size
    lengths = [1] * clear + [0, 0]
    size, count, previous, bits, held, pos = min_code_size + 1, 0, -1, 0, 0, 0
    early = 1 if tiff else 0
    while count < limit:
        while held < size and pos < len(data):
            bits = (bits << 8) | data[pos] if tiff else bits | data[pos] << held
            held, pos = held + 8, pos + 1
        if held < size:
            break
        held -= size
        if tiff:
            code = (bits >> held) & ((1 << size) - 1)
            bits &= (1 << held) - 1
        else:
            code = bits & ((1 << size) - 1)
            bits >>= size
        if code == clear:
            del lengths[clear + 2 :]
            size, previous = min_code_size + 1, -1
            continue
        if code == clear + 1:  # the end
            break
        if code < len(lengths):
            count += lengths[code]
            if previous >= 0 and len(lengths) < 4096:
                lengths.append(lengths[previous] + 1)
        elif code == len(lengths) and previous >= 0:
            lengths.append(lengths[previous] + 1)
            count += lengths[code]
        else:
            break
        previous = code
        if len(lengths) + early >= 1 << size and size < 12:
            size += 1
    return count
