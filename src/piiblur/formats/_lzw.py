"""How many bytes LZW data decodes to, as GIF and TIFF code it, without decoding it: only the length of
each table entry is kept, so a stream is measured in one pass and no memory. The stream checks compare
it with what a header declares (``gif.stream_warnings``, ``tiff.stream_warnings``)."""

from __future__ import annotations


def decoded_length(data: bytes, min_code_size: int, limit: int, tiff: bool = False) -> int:
    """Bytes (GIF: pixels) that ``data`` decodes to, counted up to ``limit``. GIF: codes least significant
    bit first, widened when the table fills; TIFF (``min_code_size`` 8): most significant bit first,
    widened one code early. Stops at the end code, at the data's end or at a code no decoder takes."""
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
