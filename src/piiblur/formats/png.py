"""PNG writer: the same colour type and bit depth, the input's ancillary chunks carried over.

8-bit images are written by Pillow: text (tEXt, zTXt, iTXt, XMP included), tIME, gAMA, cHRM, sRGB and
cICP chunks are copied byte for byte; the ICC profile, eXIf (its thumbnail redrawn), pixel density and
transparency go through Pillow's own options. Palette inputs stay palette images with the same palette:
unchanged pixels keep their index, blurred ones take the nearest palette colour. 16-bit RGB(A) pixels
(read by OpenCV) are written by OpenCV and every ancillary chunk is then inserted byte for byte. Images
embedded in the XMP (base64) are removed; a text chunk holding a thumbnail (ImageMagick raw profile) too.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from . import Encoded, SourceImage, frame_options, later_images
from . import _decoded_size as decoded_size
from ._scrub import Scrub

FORMATS = ("PNG",)

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COPIED = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"gAMA", b"cHRM", b"sRGB", b"cICP"}
_SAME_MODE_ONLY = {b"sBIT", b"bKGD"}  # meaningful only while the colour type and depth are unchanged
_HANDLED = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"iCCP", b"eXIf", b"pHYs", b"tRNS"}
_ANIMATION = {b"acTL", b"fcTL", b"fdAT"}


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG file, in order."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    found: list[tuple[bytes, bytes]] = []
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        found.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return found


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # per colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def stream_warnings(data: bytes) -> list[str]:
    """Picture data past what the header declares, which decoders do not show (two patched bytes of a
    header do): image data (IDAT, or an APNG frame's fdAT) inflating to more rows than its size, or with
    bytes after its zlib stream, and APNG frames past the count acTL declares."""
    try:
        found = chunks(data)
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", found[0][1][:13])
    except (ValueError, struct.error, IndexError):
        return []
    bits = _CHANNELS.get(colour, 4) * depth
    warned: list[str] = []
    if _holds_more(b"".join(body for kind, body in found if kind == b"IDAT"), width, height, bits, interlace):
        warned.append(f"the picture data holds more than the {width}x{height} pixels the header declares")
    frames = [body for kind, body in found if kind == b"fcTL"]
    declared = next((struct.unpack(">I", body[:4])[0] for kind, body in found if kind == b"acTL" and len(body) >= 4), 0)
    if len(frames) > declared:
        warned.append(f"{len(frames)} animation frames where acTL declares {declared}")
    frame, parts = -1, {}  # each fcTL's fdAT data (after the sequence number)
    for kind, body in found:
        if kind == b"fcTL":
            frame += 1
        elif kind == b"fdAT" and frame >= 0:
            parts.setdefault(frame, []).append(body[4:])
    for index, pieces in parts.items():
        try:
            size = struct.unpack(">II", frames[index][4:12])
        except (struct.error, IndexError):
            continue
        if _holds_more(b"".join(pieces), *size, bits, interlace):
            warned.append(f"animation frame {index + 1} holds more than its {size[0]}x{size[1]} pixels")
    return warned


def _holds_more(stream: bytes, width: int, height: int, bits: int, interlace: int) -> bool:
    """True when zlib data inflates to more than the rows of a ``width`` x ``height`` picture need (each
    with its filter byte), or carries bytes after its end. Inflated no further than one byte past."""
    expected = 0
    for x0, y0, dx, dy in (_ADAM7 if interlace else ((0, 0, 1, 1),)):
        cols, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if cols and rows:
            expected += rows * (1 + -(-cols * bits // 8))
    inflater = zlib.decompressobj()
    try:
        size = decoded_size.inflated(inflater, stream, expected + 1)
    except zlib.error:
        return False  # the decoder says what it cannot read
    return size > expected or bool(inflater.unused_data.strip(b"\x00"))


def holds_jpeg(kind: bytes, data: bytes) -> bool:
    """True for an ImageMagick "Raw profile type ..." text chunk (hex-encoded EXIF, IPTC, ...) that embeds
    a JPEG, such as an EXIF thumbnail. Such a chunk is dropped, as the thumbnail cannot be redrawn in it."""
    blob = raw_profile(kind, data)
    return blob is not None and b"\xff\xd8\xff" in blob


def raw_profile(kind: bytes, data: bytes) -> bytes | None:
    """The bytes of an ImageMagick "Raw profile type ..." text chunk (hex-encoded), else None."""
    keyword, _, rest = data.partition(b"\x00")
    if kind not in (b"tEXt", b"zTXt") or not keyword.startswith(b"Raw profile type"):
        return None
    try:
        text = _inflate(rest[1:]) if kind == b"zTXt" else rest
        return bytes.fromhex("".join(text.decode("latin-1").split()[2:]))
    except ValueError:
        return None


def make_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_MAX_TEXT = 64 << 20  # a compressed text chunk inflating beyond this is dropped, not inflated


def text_of(kind: bytes, data: bytes) -> tuple[bytes, bytes, bool] | None:
    """(head, text, compressed) of a tEXt, zTXt or iTXt chunk, the text inflated; None for other chunks.

    Raises ValueError for a text that cannot be inflated (or inflates beyond 64 MB)."""
    if kind == b"tEXt":
        head, _, text = data.partition(b"\x00")
        return head + b"\x00", text, False
    if kind == b"zTXt":
        keyword, _, rest = data.partition(b"\x00")
        return keyword + b"\x00" + rest[:1], _inflate(rest[1:]), True
    if kind == b"iTXt":
        keyword, _, rest = data.partition(b"\x00")
        flag = rest[:1] == b"\x01"
        language_end = rest.index(b"\x00", 2)
        head_end = rest.index(b"\x00", language_end + 1) + 1
        text = rest[head_end:]
        return keyword + b"\x00" + rest[:head_end], _inflate(text) if flag else text, flag
    return None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, _MAX_TEXT)
    except zlib.error as exc:
        raise ValueError(f"text chunk does not inflate: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError("text chunk inflates beyond 64 MB")
    return text


def _text_chunk(kind: bytes, data: bytes, scrub: Scrub) -> bytes | None:
    """A text chunk (XMP or other) without images embedded in its text; None to drop the chunk."""
    try:
        parsed = text_of(kind, data)
    except ValueError as exc:
        scrub.notes.append(f"{kind.decode('latin-1')} chunk removed: {exc}")
        return None
    if parsed is None:
        return data
    head, text, compressed = parsed
    keyword = head.partition(b"\x00")[0].decode("latin-1")
    stripped = scrub.xmp(text, "XMP" if keyword == "XML:com.adobe.xmp" else f"{keyword} text")
    if stripped == text:
        return data
    return head + (zlib.compress(stripped) if compressed else stripped)


def _encode_deep(source: SourceImage, pixels: np.ndarray, original: list[tuple[bytes, bytes]]) -> Encoded:
    """16-bit RGB(A): OpenCV writes the pixels, then every ancillary chunk of the input goes back in."""
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("OpenCV could not encode the 16-bit PNG")
    written = chunks(encoded.tobytes())
    notes: list[str] = ["16-bit colour kept (written by OpenCV, every ancillary chunk carried over)"]
    scrub = Scrub(Image.fromarray((pixels[..., :3] >> 8).astype(np.uint8), "RGB"))
    before, after = [], []
    seen_idat = False
    for kind, data in original:
        if kind == b"IDAT":
            seen_idat = True
        if kind in (b"IHDR", b"IDAT", b"IEND", b"PLTE") or kind in _ANIMATION:
            continue
        if holds_jpeg(kind, data):
            keyword = data.partition(b"\x00")[0].decode("latin-1")
            notes.append(f"{keyword} text chunk removed: it holds a thumbnail")
            continue
        if kind == b"eXIf":
            data = scrub.exif(data)
        scrubbed = _text_chunk(kind, data, scrub)
        if scrubbed is not None:
            (after if seen_idat else before).append(make_chunk(kind, scrubbed))
    notes.extend(scrub.notes)
    body = b"".join(make_chunk(kind, data) for kind, data in written if kind not in (b"IHDR", b"IEND"))
    return Encoded(_SIGNATURE + make_chunk(b"IHDR", dict(written)[b"IHDR"]) + b"".join(before) + body
                   + b"".join(after) + make_chunk(b"IEND", b""), notes)


def _to_palette(source: SourceImage, pixels: np.ndarray) -> Image.Image | None:
    """The blurred picture back on the input's palette: unchanged pixels keep their index."""
    image = source.image
    if image.mode != "P" or pixels.dtype != np.uint8:
        return None
    indices = np.asarray(image).copy()
    palette = np.asarray(image.getpalette("RGB") or [], np.int32).reshape(-1, 3)
    if pixels.shape[2] == 4:  # alpha per entry from tRNS (bytes), a single transparent index, or opaque
        alpha = np.full(len(palette), 255, np.int32)
        transparency = image.info.get("transparency")
        if isinstance(transparency, bytes):
            alpha[: len(transparency)] = np.frombuffer(transparency, np.uint8)[: len(alpha)]
        elif isinstance(transparency, int) and transparency < len(alpha):
            alpha[transparency] = 0
        palette = np.column_stack([palette, alpha])
    changed = (pixels != source.pixels).any(axis=2)
    if changed.any():
        wanted = pixels[changed].astype(np.int32)
        nearest = np.empty(len(wanted), np.uint8)
        for start in range(0, len(wanted), 4096):  # nearest palette entry, in slices to bound memory
            part = wanted[start:start + 4096]
            nearest[start:start + 4096] = ((part[:, None, :] - palette[None]) ** 2).sum(axis=2).argmin(axis=1)
        indices[changed] = nearest
    out = Image.fromarray(indices, "P")
    out.putpalette(image.getpalette() or [])
    return out


def _animation_options(source: SourceImage, frames: list[Image.Image]) -> dict[str, Any]:
    """An APNG's frames as Pillow decodes them, whole canvases: each replaces the last (blend "source",
    dispose "none"), with the input's durations and loop; a default image outside the animation stays so."""
    options = frame_options(source, frames)
    if options:
        options.update(disposal=PngImagePlugin.Disposal.OP_NONE, blend=PngImagePlugin.Blend.OP_SOURCE,
                       default_image=bool(source.image.info.get("default_image", False)))
    return options


def encode(source: SourceImage, pixels: np.ndarray, later: list[np.ndarray] | None = None) -> Encoded:
    original = chunks(source.data)
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return _encode_deep(source, pixels, original)
    # Pillow infers the 16-bit modes from the dtype but refuses them when named
    picture = Image.fromarray(pixels) if source.mode.startswith("I;16") else Image.fromarray(pixels, source.mode)
    info = source.image.info
    header = dict(original).get(b"IHDR", b"")
    deep_colour = len(header) >= 10 and header[8] == 16 and header[9] in (2, 6)
    frames = later_images(source, later)
    paletted = None if frames else _to_palette(source, pixels)
    same_mode = (source.image.mode == source.mode or paletted is not None) and not deep_colour
    notes: list[str] = []
    scrub = Scrub(picture)
    if paletted is not None:
        picture = paletted

    pnginfo = PngImagePlugin.PngInfo()
    dropped: list[str] = []
    for kind, data in original:
        if holds_jpeg(kind, data):
            keyword = data.partition(b"\x00")[0].decode("latin-1")
            notes.append(f"{keyword} text chunk removed: it holds a thumbnail")
        elif kind in _COPIED or (kind in _SAME_MODE_ONLY and same_mode):
            scrubbed = _text_chunk(kind, data, scrub)
            if scrubbed is not None:
                pnginfo.add(kind, scrubbed)
        elif kind not in _HANDLED and kind not in _ANIMATION and kind.decode("latin-1") not in dropped:
            dropped.append(kind.decode("latin-1"))
    options: dict[str, Any] = {"format": "PNG", "pnginfo": pnginfo}
    options.update(scrub.pillow_options(info, ("icc_profile", "dpi")))
    if "transparency" in info and same_mode and (source.mode != "RGBA" or paletted is not None):
        options["transparency"] = info["transparency"]
    options.update(scrub.pillow_options(info, ("exif",)))
    notes.extend(scrub.notes)

    options.update(_animation_options(source, frames))
    out = io.BytesIO()
    picture.save(out, **options)
    if paletted is not None:
        notes.append("palette kept: blurred pixels take the nearest palette colour")
    elif source.image.mode != source.mode:
        notes.append(f"written as {source.mode} (the input was {source.image.mode})")
    if deep_colour:
        notes.append("16-bit colour written as 8-bit (Pillow decodes 16-bit RGB(A) PNG to 8 bits)")
    if len(header) >= 13 and header[12] == 1:
        notes.append("Adam7 interlacing not kept")
    if frames:
        notes.append(f"all {len(frames) + 1} animation frames searched and written back whole (no frame deltas)")
    if dropped:
        notes.append(f"PNG chunks not carried over: {', '.join(dropped)}")
    return Encoded(out.getvalue(), notes)
