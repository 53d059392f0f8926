"""Fuzz the ``pii-blur`` command: mutated images and hostile metadata must fail closed.

    python benchmarks/fuzz.py [--count 3000] [--seed 1] [--keep DIR] [--repro DIR]

Seeds are made here, from a fixed seed: small pictures (the example portrait,
a drawn plate, an empty gradient, 2:1 panoramas with GPano) written as JPEG
(baseline, progressive, grey, CMYK; EXIF with GPS and a thumbnail, XMP with
GPano and GImage:Data, extended XMP), PNG (text, iCCP, eXIf, iTXt XMP,
palette, 16-bit), TIFF (multi-page, 16-bit, oriented), WebP (lossy, lossless,
animated), HEIF, AVIF and animated GIF. Each file is one seed with one
mutation: bit flips, byte runs, truncation, a duplicated marker/chunk/box,
a length or dimension field set to an extreme, hostile GPano values, hostile
XMP (huge extended-XMP length claims, malformed XML, entity expansion, deep
nesting), hostile EXIF (orientation, thumbnail offsets, IFD loops), a
wrong extension, or an empty segment (a JPEG's APPn or comment, a PNG's
ancillary chunk: valid files); a few are left as they are.

The real command runs over them in batches (``-j 2``, ``--report``) under an
address-space limit and a timeout per batch. Every batch must end with exit
code 0 or 1, no traceback, a report, every file either written (same relative
path) or named in exactly one ``error:`` line, nothing else on stderr, no file
created or changed outside OUTPUT_DIR (HOME and TMPDIR included), every input
unchanged, and every valid file (unchanged, renamed, an empty segment added)
written. A batch that
aborts is rerun with ``-j 1`` on the files it left, to name the file that
breaks it. Prints counts per format and mutation, and the violations grouped,
with an example each; exits 1 when there is any violation.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, PngImagePlugin

try:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HAVE_HEIF = True
except ImportError:  # pragma: no cover - a project dependency
    HAVE_HEIF = False

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "street_portrait.jpg"
GIB = 2**30

# -- pictures ----------------------------------------------------------------------------------------------


def _gradient(w: int, h: int, rng: random.Random) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xs / max(w, 1) * 200, ys / max(h, 1) * 180, (xs + ys) / max(w + h, 1) * 160], axis=2)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 6, (h, w, 3))
    return np.clip(base + 30 + noise, 0, 255).astype(np.uint8)


def _portrait(size: int) -> np.ndarray:
    rgb = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def _plate(w: int, h: int, rng: random.Random) -> np.ndarray:
    rgb = _gradient(w, h, rng)
    pw, ph = max(40, w // 2), max(12, w // 8)
    x, y = (w - pw) // 2, min(h - ph - 1, h // 2)
    cv2.rectangle(rgb, (x, y), (x + pw, y + ph), (245, 245, 245), -1)
    cv2.rectangle(rgb, (x, y), (x + pw, y + ph), (0, 0, 0), 2)
    cv2.putText(rgb, "KL 482 TX", (x + 4, y + ph - 4), cv2.FONT_HERSHEY_SIMPLEX, pw / 210, (0, 0, 0), 2, cv2.LINE_AA)
    return rgb


def _panorama(w: int, rng: random.Random, with_face: bool) -> np.ndarray:
    h = w // 2
    rgb = _gradient(w, h, rng)
    if with_face:
        face = _portrait(h // 2)
        x, y = rng.choice([w - h // 4, w // 3]), h // 4  # across the seam, or in the middle
        for dx in range(face.shape[1]):
            rgb[y:y + face.shape[0], (x + dx) % w] = face[:, dx]
    return rgb


def picture(content: str, rng: random.Random) -> np.ndarray:
    if content == "face":
        return _portrait(rng.choice([96, 128, 160, 192, 256]))
    if content == "plate":
        return _plate(rng.choice([128, 192, 256]), rng.choice([96, 128, 160]), rng)
    if content == "none":
        return _gradient(rng.randint(64, 256), rng.randint(64, 256), rng)
    return _panorama(rng.choice([256, 384, 512]), rng, content == "pano-face")


# -- metadata ----------------------------------------------------------------------------------------------


@dataclass
class Meta:
    exif: bytes | None = None  # a TIFF structure, without the "Exif\0\0" of JPEG's APP1
    xmp: bytes | None = None
    extended: list[bytes] = field(default_factory=list)  # JPEG extended-XMP APP1 payloads
    icc: bytes | None = None


def _values(kind: int, values: object, order: str) -> bytes:
    if kind in (1, 2, 7):
        return bytes(values)  # type: ignore[arg-type]
    if kind == 3:
        return struct.pack(f"{order}{len(values)}H", *values)  # type: ignore[arg-type]
    if kind == 4:
        return struct.pack(f"{order}{len(values)}I", *values)  # type: ignore[arg-type]
    return b"".join(struct.pack(f"{order}II", n, d) for n, d in values)  # type: ignore[attr-defined]


Entry = tuple[int, int, object]


def _ifd_size(entries: list[Entry], order: str) -> int:
    extra = sum((len(_values(k, v, order)) + 1) & ~1 for _, k, v in entries if len(_values(k, v, order)) > 4)
    return 2 + 12 * len(entries) + 4 + extra


def _ifd(entries: list[Entry], offset: int, following: int, order: str) -> bytes:
    out = struct.pack(f"{order}H", len(entries))
    data = b""
    data_at = offset + 2 + 12 * len(entries) + 4
    for tag, kind, value in sorted(entries, key=lambda e: e[0]):
        raw = _values(kind, value, order)
        count = len(raw) // {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}[kind]
        if len(raw) <= 4:
            out += struct.pack(f"{order}HHI", tag, kind, count)[:8] + raw.ljust(4, b"\0")
        else:
            out += struct.pack(f"{order}HHII", tag, kind, count, data_at + len(data))
            data += raw + b"\0" * (len(raw) & 1)
    return out + struct.pack(f"{order}I", following) + data


def exif_block(orientation: int, thumb: bytes | None, order: str = "<") -> tuple[bytes, dict[str, int]]:
    """An EXIF TIFF structure: IFD0 (orientation), Exif and GPS IFDs, IFD1 with a JPEG thumbnail.

    Also returns where its fields are, for the hostile variants to overwrite.
    """
    ifd0: list[Entry] = [(0x010F, 2, b"FuzzCam\0"), (0x0112, 3, [orientation]), (0x8769, 4, [0]), (0x8825, 4, [0])]
    sub: list[Entry] = [(0x9003, 2, b"2024:01:01 12:00:00\0")]
    gps: list[Entry] = [(1, 2, b"N\0"), (2, 5, [(52, 1), (22, 1), (1234, 100)]), (3, 2, b"E\0"),
                        (4, 5, [(4, 1), (53, 1), (4321, 100)])]
    ifd1: list[Entry] = [(0x0103, 3, [6]), (0x0201, 4, [0]), (0x0202, 4, [len(thumb or b"")])]
    o0 = 8
    o_sub = o0 + _ifd_size(ifd0, order)
    o_gps = o_sub + _ifd_size(sub, order)
    o1 = o_gps + _ifd_size(gps, order)
    o_thumb = o1 + _ifd_size(ifd1, order)
    ifd0[2], ifd0[3] = (0x8769, 4, [o_sub]), (0x8825, 4, [o_gps])
    ifd1[1] = (0x0201, 4, [o_thumb])
    head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(f"{order}I", o0)
    block = head + _ifd(ifd0, o0, o1 if thumb else 0, order) + _ifd(sub, o_sub, 0, order)
    block += _ifd(gps, o_gps, 0, order) + (_ifd(ifd1, o1, 0, order) + thumb if thumb else b"")
    where = {"ifd0": o0, "orientation": o0 + 2 + 12 * 1 + 8, "exif_ptr": o0 + 2 + 12 * 2 + 8,
             "ifd0_next": o0 + 2 + 12 * 4, "gps": o_gps, "ifd1": o1, "thumb_offset": o1 + 2 + 12 + 8,
             "thumb_length": o1 + 2 + 24 + 8, "thumb": o_thumb}
    return block, where


XMP_NS = ('xmlns:GPano="http://ns.google.com/photos/1.0/panorama/" '
          'xmlns:GImage="http://ns.google.com/photos/1.0/image/" xmlns:xmpNote="http://ns.adobe.com/xmp/note/"')


def xmp_packet(props: dict[str, str], element: bool = False, inner: str = "", doctype: str = "") -> bytes:
    if element:
        body = f'<rdf:Description rdf:about="" {XMP_NS}>'
        body += "".join(f"<{k}>{v}</{k}>" for k, v in props.items()) + inner + "</rdf:Description>"
    else:
        attrs = " ".join(f'{k}="{v}"' for k, v in props.items())
        body = f'<rdf:Description rdf:about="" {XMP_NS} {attrs}>{inner}</rdf:Description>'
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{doctype}<x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{body}</rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>').encode()


EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"


def extended(packet: bytes, chunk: int = 4000) -> tuple[str, list[bytes]]:
    guid = hashlib.md5(packet, usedforsecurity=False).hexdigest().upper()
    parts = [EXT_SIG + guid.encode() + struct.pack(">II", len(packet), at) + packet[at:at + chunk]
             for at in range(0, len(packet), chunk)]
    return guid, parts


def _jpeg_bytes(rgb: np.ndarray, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).resize(size).save(out, "JPEG", quality=80)
    return out.getvalue()


def gpano_props(w: int, h: int) -> dict[str, str]:
    return {"GPano:ProjectionType": "equirectangular", "GPano:FullPanoWidthPixels": str(w),
            "GPano:FullPanoHeightPixels": str(w // 2), "GPano:CroppedAreaImageWidthPixels": str(w),
            "GPano:CroppedAreaImageHeightPixels": str(h), "GPano:CroppedAreaLeftPixels": "0",
            "GPano:CroppedAreaTopPixels": str((w // 2 - h) // 2)}


def default_meta(rgb: np.ndarray, pano: bool, rng: random.Random) -> Meta:
    h, w = rgb.shape[:2]
    thumb = _jpeg_bytes(rgb, (80, max(8, 80 * h // w)))
    block, _ = exif_block(rng.choice([1, 1, 1, 3, 6, 8]) if not pano else 1, thumb, rng.choice("<>"))
    props = gpano_props(w, h) if pano else {}
    gimage = base64.b64encode(_jpeg_bytes(rgb, (64, max(8, 64 * h // w)))).decode()
    meta = Meta(exif=block, icc=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    if rng.random() < 0.5:  # the image in extended XMP, as Google's cameras write it
        guid, meta.extended = extended(xmp_packet({"GImage:Mime": "image/jpeg", "GImage:Data": gimage}))
        props["xmpNote:HasExtendedXMP"] = guid
    else:
        props.update({"GImage:Mime": "image/jpeg", "GImage:Data": gimage})
    meta.xmp = xmp_packet(props, element=rng.random() < 0.3)
    return meta


# -- writers -----------------------------------------------------------------------------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    payload = payload[:65533]  # the most a segment holds
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg: bytes, segments: list[bytes]) -> bytes:
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # keep JFIF first
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:at] + b"".join(segments) + jpeg[at:]


def write_jpeg(img: Image.Image, meta: Meta, variant: str) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 88}
    if variant == "progressive":
        options.update(progressive=True, subsampling=0)
    elif variant == "restart":
        options.update(restart_marker_blocks=4)
    img = img.convert({"grey": "L", "cmyk": "CMYK"}.get(variant, "RGB"))
    img.save(out, "JPEG", **options)
    segments = []
    if meta.exif is not None:
        segments.append(_segment(0xE1, b"Exif\0\0" + meta.exif))
    if meta.xmp is not None:
        segments.append(_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + meta.xmp))
    segments += [_segment(0xE1, part) for part in meta.extended]
    if meta.icc is not None and variant != "cmyk":
        segments.append(_segment(0xE2, b"ICC_PROFILE\0\x01\x01" + meta.icc))
    return with_segments(out.getvalue(), segments)


def write_png(img: Image.Image, meta: Meta, variant: str) -> bytes:
    if variant == "16bit":
        rgb = np.asarray(img.convert("RGB")).astype(np.uint16) * 257
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return _png_insert(encoded.tobytes(), meta)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "fuzz seed")
    info.add_text("Description", "compressed text " * 20, zip=True)
    if meta.xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"))
    img = {"palette": lambda i: i.convert("P", palette=Image.Palette.ADAPTIVE), "rgba": lambda i: i.convert("RGBA"),
           "grey": lambda i: i.convert("L")}.get(variant, lambda i: i)(img)
    out = io.BytesIO()
    options: dict[str, object] = {"pnginfo": info}
    if meta.exif is not None:
        options["exif"] = meta.exif
    if meta.icc is not None and variant not in ("grey", "palette"):
        options["icc_profile"] = meta.icc
    img.save(out, "PNG", **options)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_insert(png: bytes, meta: Meta) -> bytes:
    extra = _png_chunk(b"eXIf", meta.exif) if meta.exif else b""
    if meta.xmp:
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + meta.xmp)
    return png[:33] + extra + png[33:]  # after IHDR


def write_tiff(img: Image.Image, meta: Meta, variant: str) -> bytes:
    out = io.BytesIO()
    info: dict[int, object] = {}
    if meta.xmp is not None:
        info[700] = meta.xmp
    if variant == "16bit":
        rgb = np.asarray(img.convert("RGB")).astype(np.uint16) * 257
        ok, encoded = cv2.imencode(".tiff", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return encoded.tobytes()
    if variant == "oriented":
        info[274] = 6
    pages = [img.rotate(90 * k) for k in range(1, 3)] if variant == "multipage" else []
    compression = {"multipage": "tiff_lzw", "deflate": "tiff_adobe_deflate", "jpeg": "jpeg"}.get(variant, "raw")
    img.save(out, "TIFF", tiffinfo=info, compression=compression, save_all=bool(pages), append_images=pages)
    return out.getvalue()


def write_webp(img: Image.Image, meta: Meta, variant: str) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"lossless": variant == "lossless", "quality": 80}
    for key in ("exif", "xmp"):
        if getattr(meta, key) is not None:
            options[key] = getattr(meta, key)
    if meta.icc is not None:
        options["icc_profile"] = meta.icc
    if variant == "animated":
        frames = [img.rotate(5 * k) for k in range(1, 3)]
        img.save(out, "WEBP", save_all=True, append_images=frames, duration=100, **options)
    else:
        img.save(out, "WEBP", **options)
    return out.getvalue()


def write_heif(img: Image.Image, meta: Meta, variant: str) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 80}
    if meta.exif is not None:
        options["exif"] = b"Exif\0\0" + meta.exif
    if meta.xmp is not None:
        options["xmp"] = meta.xmp
    img.save(out, "AVIF" if variant == "avif" else "HEIF", **options)
    return out.getvalue()


def write_gif(img: Image.Image, meta: Meta, variant: str) -> bytes:
    out = io.BytesIO()
    frames = [img.rotate(10 * k) for k in range(1, 3)]
    comment = (meta.xmp or b"")[:60000]
    img.save(out, "GIF", save_all=True, append_images=frames, duration=100, loop=0, comment=comment)
    return out.getvalue()


Writer = Callable[[Image.Image, Meta, str], bytes]
# (format, variant) -> (extension, writer)
VARIANTS: dict[tuple[str, str], tuple[str, Writer]] = {
    ("jpeg", "baseline"): (".jpg", write_jpeg), ("jpeg", "progressive"): (".jpg", write_jpeg),
    ("jpeg", "restart"): (".jpeg", write_jpeg), ("jpeg", "grey"): (".jpg", write_jpeg),
    ("jpeg", "cmyk"): (".jpg", write_jpeg),
    ("png", "rgb"): (".png", write_png), ("png", "rgba"): (".png", write_png), ("png", "palette"): (".png", write_png),
    ("png", "grey"): (".png", write_png), ("png", "16bit"): (".png", write_png),
    ("tiff", "multipage"): (".tif", write_tiff), ("tiff", "raw"): (".tiff", write_tiff),
    ("tiff", "deflate"): (".tif", write_tiff), ("tiff", "oriented"): (".tif", write_tiff),
    ("tiff", "16bit"): (".tif", write_tiff),
    ("webp", "lossy"): (".webp", write_webp), ("webp", "lossless"): (".webp", write_webp),
    ("webp", "animated"): (".webp", write_webp),
    ("gif", "animated"): (".gif", write_gif),
}
if HAVE_HEIF:
    VARIANTS[("heif", "heic")] = (".heic", write_heif)
    VARIANTS[("heif", "avif")] = (".avif", write_heif)
CONTENTS = ("face", "plate", "none", "pano-face", "pano-none")


@dataclass
class Seed:
    fmt: str
    variant: str
    content: str
    rgb: np.ndarray
    meta: Meta
    ext: str
    data: bytes = b""

    def build(self, meta: Meta | None = None) -> bytes:
        writer = VARIANTS[(self.fmt, self.variant)][1]
        return writer(Image.fromarray(self.rgb), self.meta if meta is None else meta, self.variant)


def make_seeds(rng: random.Random) -> dict[tuple[str, str], list[Seed]]:
    seeds: dict[tuple[str, str], list[Seed]] = {}
    for key, (ext, _) in VARIANTS.items():
        for content in CONTENTS:
            rgb = picture(content, rng)
            seed = Seed(key[0], key[1], content, rgb, default_meta(rgb, content.startswith("pano"), rng), ext)
            seed.data = seed.build()
            seeds.setdefault(key, []).append(seed)
    return seeds


# -- structure of the bytes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """A marker segment, chunk, box or IFD entry: its bytes and its length (or count) field."""

    start: int
    end: int
    length_at: int
    length_size: int
    order: str


def units(data: bytes) -> list[Unit]:
    if data[:2] == b"\xff\xd8":
        return list(_jpeg_units(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return list(_chunk_units(data, 8, ">", 0, 12))
    if data[:4] == b"RIFF":
        return list(_chunk_units(data, 12, "<", 4, 8))
    if data[4:8] == b"ftyp":
        return list(_box_units(data, 0, len(data), 0))
    if data[:4] in (b"II*\0", b"MM\0*"):
        return list(_tiff_units(data))
    return []


def _jpeg_units(data: bytes) -> Iterator[Unit]:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if 0xD0 <= marker <= 0xD9 or marker in (0x01, 0xFF):
            pos += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        yield Unit(pos, min(len(data), pos + 2 + length), pos + 2, 2, ">")
        if marker == 0xDA:
            return
        pos += 2 + length


def _chunk_units(data: bytes, pos: int, order: str, length_off: int, head: int) -> Iterator[Unit]:
    while pos + head <= len(data):
        size = struct.unpack_from(f"{order}I", data, pos + length_off)[0]
        end = pos + size + head if order == ">" else pos + 8 + size + (size & 1)
        yield Unit(pos, min(end, len(data)), pos + length_off, 4, order)
        pos = end


_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0, b"dinf": 0, b"moov": 0, b"trak": 0}


def _box_units(data: bytes, pos: int, stop: int, depth: int) -> Iterator[Unit]:
    while pos + 8 <= stop:
        size, kind = struct.unpack_from(">I4s", data, pos)
        end = stop if size == 0 else pos + max(size, 8)
        yield Unit(pos, min(end, stop), pos, 4, ">")
        if kind in _CONTAINERS and depth < 4:
            yield from _box_units(data, pos + 8 + _CONTAINERS[kind], min(end, stop), depth + 1)
        pos = end


def _tiff_units(data: bytes) -> Iterator[Unit]:
    order = "<" if data[:2] == b"II" else ">"
    seen: set[int] = set()
    offset = struct.unpack_from(f"{order}I", data, 4)[0]
    while 8 <= offset < len(data) - 2 and offset not in seen and len(seen) < 8:
        seen.add(offset)
        count = struct.unpack_from(f"{order}H", data, offset)[0]
        for k in range(count):
            at = offset + 2 + 12 * k
            if at + 12 > len(data):
                return
            yield Unit(at, at + 12, at + 4, 4, order)
        following = offset + 2 + 12 * count
        if following + 4 > len(data):
            return
        offset = struct.unpack_from(f"{order}I", data, following)[0]


# -- mutations ---------------------------------------------------------------------------------------------

Mutation = Callable[[random.Random, Seed], tuple[bytes, str]]


def bitflip(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    data = bytearray(seed.data)
    flips = rng.choice([1, 2, 4, 8, 32])
    head = rng.random() < 0.5  # half of the time in the headers
    for _ in range(flips):
        at = rng.randrange(min(len(data), 2048) if head else len(data))
        data[at] ^= 1 << rng.randrange(8)
    return bytes(data), f"{flips} bits{' in the first 2 KB' if head else ''}"


def byterun(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    data = bytearray(seed.data)
    at = rng.randrange(len(data))
    n = rng.choice([1, 4, 16, 64, 256, 4096])
    fill = rng.choice(["00", "ff", "random", "copy"])
    run = {"00": b"\0" * n, "ff": b"\xff" * n, "random": rng.randbytes(n)}.get(fill) or bytes(data[:n])
    data[at:at + n] = run
    return bytes(data), f"{n} bytes of {fill} at {at}"


def truncate(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    size = len(seed.data)
    cut = rng.choice([rng.randrange(1, min(size, 600)), rng.randrange(size), size - rng.randrange(1, min(size, 100))])
    return seed.data[:cut], f"cut at {cut} of {size}"


def duplicate(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    parts = units(seed.data)
    times = rng.choice([1, 1, 2, 50])
    if not parts:
        at, n = rng.randrange(len(seed.data)), rng.randint(1, 512)
        piece, where, what = seed.data[at:at + n], at + n, f"{n} bytes at {at}"
    else:
        unit = rng.choice(parts)
        piece, where = seed.data[unit.start:unit.end], unit.end
        what = f"unit at {unit.start} {seed.data[unit.start:unit.start + 8]!r}"
    return seed.data[:where] + piece * times + seed.data[where:], f"{what} x{times + 1}"


def _dimension_fields(data: bytes) -> list[tuple[int, int, str]]:
    """(position, size, byte order) of width/height fields."""
    fields: list[tuple[int, int, str]] = []
    if data[:2] == b"\xff\xd8":
        for unit in _jpeg_units(data):
            if data[unit.start + 1] in (0xC0, 0xC1, 0xC2) and unit.start + 9 <= len(data):
                fields += [(unit.start + 5, 2, ">"), (unit.start + 7, 2, ">")]
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        fields += [(16, 4, ">"), (20, 4, ">")]
    elif data[:3] == b"GIF":
        fields += [(6, 2, "<"), (8, 2, "<")]
    else:
        for match in re.finditer(b"ispe", data):
            fields += [(match.start() + 8, 4, ">"), (match.start() + 12, 4, ">")]
    return [f for f in fields if f[0] + f[1] <= len(data)]


def hugelen(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    data = bytearray(seed.data)
    dims = _dimension_fields(seed.data)
    if dims and rng.random() < 0.35:
        at, size, order = rng.choice(dims)
        value = rng.choice([0, 1, 2**(8 * size) - 1, 2**(8 * size - 1), 30000, 65000])
        data[at:at + size] = value.to_bytes(size, "big" if order == ">" else "little")
        if seed.data[:4] == b"\x89PNG":  # keep the CRC right, so that the decoder reads on
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return bytes(data), f"dimension at {at} = {value}"
    parts = units(seed.data)
    if not parts:
        at = rng.randrange(max(1, len(data) - 4))
        data[at:at + 4] = b"\xff\xff\xff\xff"
        return bytes(data), f"0xffffffff at {at}"
    unit = rng.choice(parts)
    top = 2 ** (8 * unit.length_size) - 1
    endian = "big" if unit.order == ">" else "little"
    old = int.from_bytes(data[unit.length_at:unit.length_at + unit.length_size], endian)
    value = rng.choice([0, 1, 2, top, top // 2, top // 2 + 1, old + 1, max(0, old - 1), min(top, 2 * len(data))])
    data[unit.length_at:unit.length_at + unit.length_size] = value.to_bytes(unit.length_size, endian)
    return bytes(data), f"length at {unit.length_at} {old} -> {value} ({seed.data[unit.start:unit.start + 8]!r})"


HOSTILE_NUMBERS = ["0", "-1", "-2000000000", "2e9", "2000000000", "4294967297", "1e308", "-1e308", "inf", "-inf",
                   "nan", "NaN", "1e-300", "0.4", "", "abc", "0x400", "1e400", "9" * 400, " 7 ", "1,5", "\u0663"]
GPANO_NUMERIC = ["FullPanoWidthPixels", "FullPanoHeightPixels", "CroppedAreaImageWidthPixels",
                 "CroppedAreaImageHeightPixels", "CroppedAreaLeftPixels", "CroppedAreaTopPixels"]


def _hostile_gpano_values(rng: random.Random, w: int, h: int) -> tuple[dict[str, str], str]:
    case = rng.choice(["random", "random", "crop-beyond-full", "full-smaller", "huge-full", "tiny-full",
                       "all-zero", "one-pixel-crop", "negative-offsets"])
    full = {"random": None, "crop-beyond-full": (w, w // 2, w, h, 3 * w, 5 * h),
            "full-smaller": (w // 4, w // 8, w, h, 0, 0), "huge-full": (2_000_000_000, 1_000_000_000, w, h, 0, 0),
            "tiny-full": (1, 1, w, h, 0, 0), "all-zero": (0, 0, 0, 0, 0, 0), "one-pixel-crop": (w, w // 2, 1, 1, 0, 0),
            "negative-offsets": (w, w // 2, w, h, -w, -10 * h)}[case]
    if full is None:
        values = {k: rng.choice(HOSTILE_NUMBERS) for k in rng.sample(GPANO_NUMERIC, rng.randint(1, 6))}
    else:
        values = {k: str(v) for k, v in zip(GPANO_NUMERIC, full, strict=True)}
    props = {"GPano:ProjectionType": rng.choice(["equirectangular", "EQUIRECTANGULAR", "equirectangular"])}
    props.update({f"GPano:{k}": v for k, v in values.items()})
    props["GPano:PoseHeadingDegrees"] = rng.choice(["nan", "inf", "720", "-1e300"])
    return props, case + " " + " ".join(f"{k[6:]}={v[:12]}" for k, v in props.items() if k != "GPano:ProjectionType")


def gpano(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    h, w = seed.rgb.shape[:2]
    props, what = _hostile_gpano_values(rng, w, h)
    meta = Meta(exif=None, xmp=xmp_packet(props, element=rng.random() < 0.4))
    return seed.build(meta), what


def _billion_laughs() -> str:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
    return f"<!DOCTYPE x:xmpmeta [{entities}]>"


def _hostile_xmp(rng: random.Random, seed: Seed) -> tuple[Meta, str]:
    h, w = seed.rgb.shape[:2]
    pano = gpano_props(w, h)
    jpeg = seed.fmt == "jpeg"
    cases = ["malformed", "billion-laughs", "deep-nesting", "huge-packet", "bad-gimage", "invalid-utf8"]
    if jpeg:
        cases += ["ext-huge-length"] * 3 + ["ext-offset-beyond", "ext-short", "ext-many-guids", "ext-no-main"]
    case = rng.choice(cases)
    meta = Meta()
    if case == "malformed":
        meta.xmp = xmp_packet(pano)[: rng.randrange(40, 400)] + b"<rdf:Description GPano:Full='1'><<</x:xmpmeta"
    elif case == "billion-laughs":
        meta.xmp = xmp_packet({**pano, "GPano:FullPanoWidthPixels": "&lol9;"}, element=rng.random() < 0.5,
                              inner="<GPano:Note>&lol9;</GPano:Note>", doctype=_billion_laughs())
    elif case == "deep-nesting":
        depth = rng.choice([1000, 20000])
        meta.xmp = xmp_packet(pano, inner="<rdf:Bag>" * depth + "</rdf:Bag>" * depth)
    elif case == "huge-packet":
        opening = "".join(f' GImage:D{i}="/9j/' + "A" * 70 for i in range(600))  # unclosed base64 openings
        meta.xmp = xmp_packet(pano, inner=f"<GImage:Data>/9j/{'QUFB' * 12000}{opening}")
    elif case == "bad-gimage":
        data = rng.choice(["/9j/" + "A" * 200, "iVBORw0KGgo" + "%%%%" * 100, "/9j/" + base64.b64encode(
            b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + rng.randbytes(300)).decode()])
        meta.xmp = xmp_packet({**pano, "GImage:Mime": "image/jpeg", "GImage:Data": data})
    elif case == "invalid-utf8":
        meta.xmp = xmp_packet(pano).replace(b"equirectangular", b"equirectangular\xff\xfe\x00\xc0")
    else:
        meta.xmp, meta.extended = _hostile_extended(rng, case, pano)
    return meta, case


def _hostile_extended(rng: random.Random, case: str, pano: dict[str, str]) -> tuple[bytes, list[bytes]]:
    packet = xmp_packet({"GImage:Mime": "image/jpeg", "GImage:Data": "/9j/" + "QUFB" * 3000})
    guid, parts = extended(packet)
    full = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 2_000_000_000, 300_000_000])
    if case == "ext-huge-length":
        parts = [EXT_SIG + guid.encode() + struct.pack(">II", full, at) + packet[at:at + 4000]
                 for at in range(0, len(packet), 4000)]
    elif case == "ext-offset-beyond":
        parts = [EXT_SIG + guid.encode() + struct.pack(">II", len(packet), full) + packet[:4000]]
    elif case == "ext-short":
        parts = [EXT_SIG + guid.encode()[: rng.randrange(33)], EXT_SIG]
    elif case == "ext-many-guids":
        parts = [EXT_SIG + hashlib.md5(bytes([i]), usedforsecurity=False).hexdigest().upper().encode()
                 + struct.pack(">II", 60_000_000, 0) + b"x" * 100 for i in range(200)]
    main = xmp_packet({**pano, "xmpNote:HasExtendedXMP": guid}) if case != "ext-no-main" else None
    return main or b"", parts


def xmp(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    meta, case = _hostile_xmp(rng, seed)
    if not meta.xmp:
        meta.xmp = None
    return seed.build(meta), case


def _hostile_exif_block(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    thumb = _jpeg_bytes(seed.rgb, (80, 60))
    order = rng.choice("<>")
    case = rng.choice(["orientation", "thumb-length", "thumb-offset", "ifd-loop", "sub-ifd-self", "count-huge",
                       "gps-zero", "thumb-garbage", "thumb-bomb", "bad-header"])
    block, where = exif_block(1, thumb, order)
    data = bytearray(block)

    def put(at: int, value: int, size: int = 4) -> None:
        data[at:at + size] = value.to_bytes(size, "little" if order == "<" else "big")

    if case == "orientation":
        put(where["orientation"], rng.choice([0, 9, 255, 65535]), 2)
    elif case == "thumb-length":
        put(where["thumb_length"], rng.choice([0xFFFFFFFF, 0x7FFFFFFF, len(thumb) + 1000, 0]))
    elif case == "thumb-offset":
        put(where["thumb_offset"], rng.choice([0xFFFFFFF0, len(block) + 10, 0, 8, where["thumb"] + 1]))
    elif case == "ifd-loop":
        put(where["ifd0_next"], where["ifd0"])
    elif case == "sub-ifd-self":
        put(where["exif_ptr"], where["ifd0"])
    elif case == "count-huge":
        put(where["ifd0"], 0xFFFF, 2)
    elif case == "gps-zero":
        data = bytearray(bytes(data).replace(struct.pack(f"{order}I", 100), b"\0\0\0\0"))
    elif case == "thumb-garbage":
        data[where["thumb"]:] = rng.randbytes(len(thumb))
    elif case == "thumb-bomb":  # a thumbnail that claims 65535 x 65535 pixels
        data[where["thumb"]:] = b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        put(where["thumb_length"], len(data) - where["thumb"])
    else:
        data[:4] = b"IM*\0"
    return bytes(data), case


def exif(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    block, case = _hostile_exif_block(rng, seed)
    return seed.build(Meta(exif=block, xmp=seed.meta.xmp, extended=seed.meta.extended)), case


def empty(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """A valid file with a segment that holds nothing: an APPn or comment in a JPEG's header (length 2, what
    killed pii-blur through jpeglib until stop 26), an ancillary chunk in a PNG (length 0)."""
    data = seed.data
    if data[:2] == b"\xff\xd8":
        scan = next((u.start for u in _jpeg_units(data) if data[u.start + 1] == 0xDA), 2)
        marker, at = rng.choice([0xFE, *range(0xE0, 0xF0)]), rng.choice([2, scan])
        return data[:at] + bytes((0xFF, marker, 0, 2)) + data[at:], f"empty {marker:02X} segment at {at}"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = rng.choice([b"tEXt", b"zTXt", b"iTXt", b"prVt"])
        chunk = struct.pack(">I", 0) + kind + struct.pack(">I", zlib.crc32(kind))
        return data[:33] + chunk + data[33:], f"empty {kind.decode()} chunk after IHDR"
    return data, "unchanged (a format without such segments)"


def scans(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """A JPEG with tens to thousands of empty AC scans of its first component before its first EOI, each a
    few bytes of end-of-band runs under a Huffman table of its own: libjpeg goes over the whole picture for
    each (a file of thousands took minutes until stop 27; now more than 500 are refused unread)."""
    data = seed.data
    sof = next((u for u in _jpeg_units(data) if data[u.start + 1] in (0xC0, 0xC1, 0xC2)), None)
    end = data.find(b"\xff\xd9", sof.end) if sof is not None else -1
    if sof is None or end < 0:
        return data, "unchanged (not a JPEG with a frame and an end)"
    height, width = struct.unpack_from(">HH", data, sof.start + 5)
    runs = max(1, -(-(-(-width // 8) * -(-height // 8)) // 32767))
    bits = ("0" + "1" * 14) * runs
    bits += "1" * (-len(bits) % 8)
    coded = b"".join(b"\xff\x00" if b == 0xFF else bytes((b,)) for b in
                     (int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))
    table = b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + bytes([1] + [0] * 15) + b"\xe0"
    count = rng.choice([20, 600, 5000])
    scan = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x01\x3f\x00" + coded
    return data[:end] + table + scan * count + data[end:], f"{count} empty scans before the end"


def rename(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    return seed.data, "wrong extension"


def none(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    return seed.data, "unchanged"


MUTATIONS: dict[str, tuple[Mutation, int]] = {  # name -> (mutation, weight)
    "none": (none, 4), "bitflip": (bitflip, 18), "byterun": (byterun, 10), "truncate": (truncate, 10),
    "duplicate": (duplicate, 10), "hugelen": (hugelen, 14), "gpano": (gpano, 12), "xmp": (xmp, 12),
    "exif": (exif, 6), "rename": (rename, 4), "empty": (empty, 4), "scans": (scans, 4),
}
VALID = frozenset({"none", "rename", "empty"})  # mutations that leave a valid file: each must be written
ODD_NAMES = ["with space", "caf\u00e9 \u00fc\u00df", "-dash", "a..b", "x" * 150, "\u65e5\u672c", "semi;colon", "'quote"]


@dataclass
class Sample:
    label: str  # path relative to the batch's input folder
    fmt: str
    variant: str
    mutation: str
    detail: str
    sha256: str = ""


def generate(count: int, seed: int, batch_size: int, into: Path) -> list[list[Sample]]:
    """Write ``count`` mutated files into ``into/bNNN/`` folders; returns the batches."""
    rng = random.Random(seed)
    seeds = make_seeds(rng)
    keys = sorted(seeds)
    kinds = list(MUTATIONS)
    weights = [MUTATIONS[k][1] for k in kinds]
    batches: list[list[Sample]] = []
    for index in range(count):
        file_rng = random.Random(f"{seed}-{index}")
        key = keys[index % len(keys)]
        kind = file_rng.choices(kinds, weights)[0]
        pool = seeds[key]
        if kind == "gpano":
            pool = [s for s in pool if s.content.startswith("pano")] or pool
        chosen = file_rng.choice(pool)
        try:
            data, detail = MUTATIONS[kind][0](file_rng, chosen)
        except (SyntaxError, ValueError, OSError) as exc:  # the format's writer refuses the hostile block
            kind = "bitflip"  # (Pillow's AVIF writer parses the EXIF it is given): mutate the bytes instead
            data, detail = bitflip(file_rng, chosen)
            detail = f"{detail} (the writer refused the metadata mutation: {exc})"
        ext = chosen.ext
        if kind == "rename":
            ext = file_rng.choice(sorted({e for e, _ in VARIANTS.values()} - {ext}))
        label = _name(index, chosen, kind, ext)
        folder = into / f"b{index // batch_size:03d}"
        (folder / label).parent.mkdir(parents=True, exist_ok=True)
        (folder / label).write_bytes(data)
        sample = Sample(label, chosen.fmt, chosen.variant, kind, f"{chosen.content}: {detail}",
                        hashlib.sha256(data).hexdigest())
        if index % batch_size == 0:
            batches.append([])
        batches[-1].append(sample)
    return batches


def _name(index: int, seed: Seed, kind: str, ext: str) -> str:
    stem = f"{index:05d}_{seed.fmt}-{seed.variant}_{seed.content}_{kind}"
    if index % 37 == 5:
        stem += " " + ODD_NAMES[(index // 37) % len(ODD_NAMES)]
    return f"d{index % 5}/{stem}{ext}"


# -- running the command -----------------------------------------------------------------------------------


@dataclass
class Limits:
    memory: int  # bytes of address space
    timeout: float  # seconds for the whole run
    stall: float  # seconds without a result


@dataclass
class Run:
    returncode: int | None
    stderr: str
    seconds: float
    timed_out: bool
    report: dict | None
    journal: dict[str, dict]


def run_cli(inp: Path, out: Path, report: Path, jobs: int, limits: Limits, env_root: Path) -> Run:
    """The command over ``inp``; killed when it runs past the timeout or reports nothing for ``limits.stall`` s."""
    cmd = [sys.executable, "-m", "piiblur", str(inp), str(out), "-j", str(jobs), "--report", str(report)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT / "src"),
           "HOME": str(env_root / "home"), "TMPDIR": str(env_root / "tmp"), "LANG": "C.UTF-8"}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))

    journal = report.with_name(report.name + ".partial")
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=env_root / "cwd", env=env,
                                preexec_fn=limit, start_new_session=True)
        timed_out = _watch(proc, journal, limits)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return Run(proc.returncode, stderr, time.perf_counter() - start, timed_out, _load_json(report),
               _load_journal(journal))


def _watch(proc: subprocess.Popen, journal: Path, limits: Limits) -> bool:
    """Wait for ``proc``; kill its process group when it is past the deadline or stalled. True when killed."""
    start = last = time.perf_counter()
    seen = -1
    while True:
        try:
            proc.wait(timeout=1.0)
            return False
        except subprocess.TimeoutExpired:
            pass
        now = time.perf_counter()
        size = journal.stat().st_size if journal.exists() else 0
        if size != seen:
            seen, last = size, now
        if now - start > limits.timeout or now - last > limits.stall:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _load_journal(path: Path) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    try:
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                entries[entry["source"]] = entry
            except (ValueError, KeyError, TypeError):
                continue
    except OSError:
        pass
    return entries


# -- checking ----------------------------------------------------------------------------------------------


@dataclass
class Violation:
    kind: str
    key: str  # what groups it with others of its kind (an exception and where it was raised)
    where: str  # the file (label) or the batch
    detail: str  # the first line of the problem


@dataclass
class Tally:
    written: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)


_ALLOWED = re.compile(r"^(error: |pii-blur: |\d+ images read, )")


def error_lines(stderr: str, labels: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The ``error:`` lines by file, and every other line that is not the summary or progress."""
    found: dict[str, list[str]] = defaultdict(list)
    stray: list[str] = []
    for line in _before_traceback(stderr).splitlines():
        if line.startswith("error: "):
            label = line[7:].split(": ", 1)[0]
            if label in labels:
                found[label].append(line)
                continue
        if not _ALLOWED.match(line) and line.strip():
            stray.append(line)
    return found, stray


def _before_traceback(stderr: str) -> str:
    """Stderr up to a traceback: what follows is the traceback, reported as one problem."""
    cut = [at for at in (stderr.find("Traceback (most recent"), stderr.find("concurrent.futures.process._Remote"))
           if at >= 0]
    return stderr[:min(cut)] if cut else stderr


def traceback_key(stderr: str) -> tuple[str, str]:
    """(exception type and where it was raised, the exception's line) of the last traceback in ``stderr``."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    tail = lines[starts[-1]:] if starts else lines
    frames = [line.strip() for line in tail if line.strip().startswith('File "')]
    exception = next((line for line in tail[1:] if line and not line[0].isspace()), "?")
    short = [_frame(f) for f in frames]
    ours = [s for s, f in zip(short, frames, strict=True) if "piiblur" in f]
    where = short[-1] if short else "?"
    if ours and ours[-1] != where:
        where += f" via {ours[-1]}"
    return f"{exception.split(':')[0]} at {where}", exception[:300]


def _frame(line: str) -> str:
    match = re.match(r'File "([^"]+)", line (\d+), in (\S+)', line)
    if not match:
        return line[:80]
    path = match.group(1)
    path = path.split("site-packages/")[-1].split("/src/")[-1]
    return f"{path}:{match.group(2)} {match.group(3)}"


def account(labels: list[str], run: Run, out: Path) -> tuple[Tally, list[str]]:
    """Each file written or failed with one line; returns the tally and the files not accounted for."""
    tally = Tally()
    entries = dict(run.journal)
    if run.report is not None:
        entries.update({e["source"]: e for e in run.report.get("files", [])})
    errors, stray = error_lines(run.stderr, set(labels))
    tally.violations += [Violation("stray stderr line", _stray_key(line), "", line[:300]) for line in stray[:20]]
    missing = []
    for label in labels:
        problem = _file_problem(label, entries.get(label), errors.get(label, []), (out / label).exists())
        if problem == "unaccounted":
            missing.append(label)
        elif problem == "written":
            tally.written.add(label)
        elif problem == "failed":
            tally.failed.add(label)
        else:
            tally.violations.append(Violation(problem, "", label, (errors.get(label) or [""])[0][:300]))
    return tally, missing


def _stray_key(line: str) -> str:
    return re.sub(r"\d+", "N", line.split(":")[0])[:60]


def _file_problem(label: str, entry: dict | None, lines: list[str], exists: bool) -> str:
    if entry is None and not lines:
        return "unaccounted"
    status = entry.get("status") if entry else "failed"
    if status in ("blurred", "copied"):
        if not exists:
            return "reported written, no output"
        return "written but also an error line" if lines else "written"
    if status != "failed":
        return f"status {status}"
    if exists:
        return "failed, yet an output exists"
    if len(lines) != 1:
        return f"failed with {len(lines)} error lines"
    return "failed"


def run_problem(run: Run, labels: list[str]) -> tuple[str, str, str] | None:
    """(kind, key, first line) of what went wrong with the run as a whole, or None."""
    if run.timed_out:
        return "timeout or stall", "", f"killed after {run.seconds:.0f} s; last line: {_last_line(run.stderr)}"
    if "Traceback" in run.stderr:
        key, line = traceback_key(run.stderr)
        return "traceback", key, line
    if run.returncode not in (0, 1):
        return "exit code", str(run.returncode), _last_line(run.stderr)
    if run.report is None:
        return "no report", "", _last_line(run.stderr)
    if len(run.report.get("files", [])) != len(labels):
        return "report count", "", f"{len(run.report.get('files', []))} entries for {len(labels)} files"
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def snapshot(root: Path, skip: list[Path]) -> dict[str, tuple[int, int]]:
    seen: dict[str, tuple[int, int]] = {}
    skipped = {str(s) for s in skip}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skipped]
        for name in files:
            path = os.path.join(folder, name)
            if path in skipped:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            seen[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return seen


MANIFEST_FOLDER = ".pii-blur/"  # pii-blur's own resume manifest in OUTPUT_DIR


def outside_changes(before: dict, after: dict) -> list[str]:
    changed = [f"new {p}" for p in after if p not in before]
    changed += [f"changed {p}" for p in after if p in before and after[p] != before[p]]
    changed += [f"removed {p}" for p in before if p not in after]
    return sorted(changed)


def stray_outputs(out: Path, labels: list[str]) -> list[str]:
    expected = set(labels)
    found = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(p for p in found if p not in expected and not p.startswith(MANIFEST_FOLDER))


# -- the campaign ------------------------------------------------------------------------------------------


@dataclass
class Campaign:
    root: Path
    jobs: int
    memory: int
    timeout_base: float
    timeout_per_file: float
    stall: float
    max_reruns: int
    tally: Tally = field(default_factory=Tally)
    runs: int = 0

    seen_outside: set[str] = field(default_factory=set)

    def limits(self, n: int) -> Limits:
        return Limits(self.memory, self.timeout_base + self.timeout_per_file * n, self.stall)

    def checked_run(self, name: str, inp: Path, labels: list[str], jobs: int) -> tuple[Run, list[str], tuple | None]:
        out, report = self.root / "out" / name, self.root / "reports" / f"{name}.json"
        skip = [out, report, report.with_name(report.name + ".partial")]
        before = snapshot(self.root, skip)
        run = run_cli(inp, out, report, jobs, self.limits(len(labels)), self.root / "env")
        self.runs += 1
        tally, missing = account(labels, run, out)
        self._merge(tally)
        for change in outside_changes(before, snapshot(self.root, skip)):
            path = change.split(" ", 1)[1]
            if path not in self.seen_outside:  # each path once: a cache is rewritten by every run
                self.seen_outside.add(path)  # onnxruntime's telemetry state (HOME, TMPDIR) counts too
                key = "in HOME" if path.startswith("env/home/") else change.split()[0]
                self.tally.violations.append(Violation("file outside OUTPUT_DIR", key, name, change))
        for path in stray_outputs(out, labels)[:20] if out.exists() else []:
            self.tally.violations.append(Violation("stray file in OUTPUT_DIR", "", name, path))
        return run, missing, run_problem(run, labels)

    def _merge(self, tally: Tally) -> None:
        self.tally.written |= tally.written
        self.tally.failed |= tally.failed
        self.tally.violations += tally.violations

    def batch(self, name: str, labels: list[str]) -> None:
        _, missing, problem = self.checked_run(name, self.root / "in" / name, labels, self.jobs)
        if problem:
            kind, key, line = problem
            self.tally.violations.append(Violation(f"batch: {kind}", key.split(" at ")[0], name, line))
        if missing:
            self.attribute(name, missing)

    def attribute(self, name: str, remaining: list[str]) -> None:
        """Rerun the files a batch left with ``-j 1``: the first one not reported is the one that broke it."""
        for attempt in range(self.max_reruns):
            if not remaining:
                return
            rerun = f"{name}-rerun{attempt:02d}"
            inp = self.root / "in-rerun" / rerun
            for label in remaining:
                (inp / label).parent.mkdir(parents=True, exist_ok=True)
                os.link(self.root / "in" / name / label, inp / label)
            run, missing, problem = self.checked_run(rerun, inp, remaining, 1)
            if not missing:
                return
            culprit = sorted(missing)[0]
            kind, key, line = problem or ("unaccounted", "", _last_line(run.stderr))
            self.tally.violations.append(Violation(kind, key, f"{name}/{culprit}", line))
            remaining = [label for label in missing if label != culprit]
        for label in remaining:
            self.tally.violations.append(Violation("unaccounted", "reruns exhausted", f"{name}/{label}", ""))


def check_inputs(root: Path, batches: list[list[Sample]]) -> list[Violation]:
    found = []
    for number, batch in enumerate(batches):
        for sample in batch:
            path = root / "in" / f"b{number:03d}" / sample.label
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                digest = f"unreadable: {exc}"
            if digest != sample.sha256:
                found.append(Violation("input changed", "", f"b{number:03d}/{sample.label}", digest))
    return found


# -- the table ---------------------------------------------------------------------------------------------


def outcome_of(path: str, tally: Tally, bad: set[str]) -> str:
    if path in bad:
        return "violation"
    if path in tally.written:
        return "written"
    return "failed" if path in tally.failed else "violation"


def print_table(batches: list[list[Sample]], tally: Tally, seconds: float, runs: int) -> None:
    bad = {v.where for v in tally.violations}
    rows: dict[str, Counter] = defaultdict(Counter)
    for number, batch in enumerate(batches):
        for sample in batch:
            outcome = outcome_of(f"b{number:03d}/{sample.label}", tally, bad)
            for row in (f"format {sample.fmt}", f"mutation {sample.mutation}", "all"):
                rows[row]["files"] += 1
                rows[row][outcome] += 1
    print(f"\n{'':<22}{'files':>7}{'written':>9}{'failed':>8}{'violation':>10}")
    for row in sorted(rows, key=lambda r: (r == "all", r)):
        c = rows[row]
        print(f"{row:<22}{c['files']:>7}{c['written']:>9}{c['failed']:>8}{c['violation']:>10}")
    print(f"\n{runs} runs of the command in {seconds:.0f} s")
    groups: dict[tuple[str, str], list[Violation]] = defaultdict(list)
    for v in tally.violations:
        groups[(v.kind, v.key)].append(v)
    print(f"\nviolations: {len(tally.violations)} in {len(groups)} groups")
    for (kind, key), items in sorted(groups.items(), key=lambda g: -len(g[1])):
        print(f"  {len(items):>5}  {kind}{': ' + key if key else ''}")
        for v in items[:3]:
            print(f"         {v.where}: {v.detail[:200]}")


def keep_reproducers(root: Path, tally: Tally, into: Path) -> None:
    """One input file per group of violations, copied to ``into/NN-kind/``."""
    groups: dict[tuple[str, str], Violation] = {}
    for v in tally.violations:
        if "/" in v.where and (root / "in" / v.where).is_file():
            groups.setdefault((v.kind, v.key), v)
    for number, ((kind, key), v) in enumerate(sorted(groups.items())):
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{kind} {key}").strip("-")[:80]
        folder = into / f"{number:02d}-{slug}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / "in" / v.where, folder / Path(v.where).name)
        (folder / "problem.txt").write_text(f"{kind}: {key}\n{v.where}\n{v.detail}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="files to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=300, help="files per run of the command")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--memory-gib", type=float, default=4.0, help="address-space limit of the command")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run, plus --timeout-per-file")
    parser.add_argument("--timeout-per-file", type=float, default=4.0, help="seconds a file may add to --timeout")
    parser.add_argument("--stall", type=float, default=150.0,
                        help="seconds without a result before a run is killed (big mutants are slow, not hung)")
    parser.add_argument("--max-reruns", type=int, default=30, help="-j 1 reruns per batch to name culprits")
    parser.add_argument("--keep", type=Path, help="work here and keep it (inputs, outputs, reports)")
    parser.add_argument("--repro", type=Path, help="copy one input per group of violations here")
    parser.add_argument("--json", type=Path, help="write the violations and counts here")
    parser.add_argument("--table", type=Path, metavar="JSON", help="only print the table of an earlier --json")
    args = parser.parse_args(argv)
    if args.table:
        return table_from_json(args.table)
    root = Path(tempfile.mkdtemp(prefix="piiblur-fuzz-")) if args.keep is None else args.keep.resolve()
    try:
        return campaign(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def campaign(args: argparse.Namespace, root: Path) -> int:
    start = time.perf_counter()
    for sub in ("in", "out", "reports", "env/home", "env/tmp", "env/cwd"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    batches = samples(args, root)
    print(f"{args.count} files in {time.perf_counter() - start:.0f} s under {root}", flush=True)
    work = Campaign(root, args.jobs, int(args.memory_gib * GIB), args.timeout, args.timeout_per_file, args.stall,
                    args.max_reruns)
    for number, batch in enumerate(batches):
        name = f"b{number:03d}"
        work.batch(name, [s.label for s in batch])
        for v in work.tally.violations:  # name files by batch, so that they are unique
            if v.where and "/" in v.where and not v.where.startswith("b"):
                v.where = f"{name}/{v.where}"
        print(f"{name}: {len(work.tally.written)} written, {len(work.tally.failed)} failed, "
              f"{len(work.tally.violations)} violations so far", flush=True)
        if args.json:  # what is known so far, for a run that is stopped early
            write_json(args.json, batches[:number + 1], _finished(work.tally, batches))
    work.tally = _finished(work.tally, batches)
    work.tally.violations += check_inputs(root, batches)
    work.tally.violations += [Violation("a valid file failed", sample.mutation, f"b{number:03d}/{sample.label}", "")
                              for number, batch in enumerate(batches) for sample in batch
                              if sample.mutation in VALID and f"b{number:03d}/{sample.label}" in work.tally.failed]
    print_table(batches, work.tally, time.perf_counter() - start, work.runs)
    if args.repro:
        keep_reproducers(root, work.tally, args.repro)
    if args.json:
        write_json(args.json, batches, work.tally)
    return 1 if work.tally.violations else 0


def samples(args: argparse.Namespace, root: Path) -> list[list[Sample]]:
    """Generate the files, or take those of an earlier run kept in ``root`` (its outputs are cleared)."""
    listing = root / "samples.json"
    if listing.exists():
        for sub in ("out", "reports", "in-rerun"):
            shutil.rmtree(root / sub, ignore_errors=True)
            (root / sub).mkdir()
        return [[Sample(**s) for s in batch] for batch in json.loads(listing.read_text())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow on the hostile EXIF it is asked to write
        batches = generate(args.count, args.seed, args.batch, root / "in")
    listing.write_text(json.dumps([[s.__dict__ for s in batch] for batch in batches]))
    return batches


def _finished(tally: Tally, batches: list[list[Sample]]) -> Tally:
    return Tally(_full(batches, tally.written), _full(batches, tally.failed), list(tally.violations))


def _full(batches: list[list[Sample]], labels: set[str]) -> set[str]:
    """Labels as batch/label paths."""
    return {f"b{n:03d}/{s.label}" for n, batch in enumerate(batches) for s in batch if s.label in labels}


def table_from_json(path: Path) -> int:
    saved = json.loads(path.read_text())
    batches: dict[str, list[Sample]] = defaultdict(list)
    for s in saved["samples"]:
        name, label = s["file"].split("/", 1)
        batches[name].append(Sample(label, s["format"], s["variant"], s["mutation"], s["detail"]))
    tally = Tally(set(saved["written"]), set(saved["failed"]), [Violation(**v) for v in saved["violations"]])
    print_table([batches[name] for name in sorted(batches)], tally, 0.0, 0)
    return 1 if tally.violations else 0


def write_json(path: Path, batches: list[list[Sample]], tally: Tally) -> None:
    samples = [{"file": f"b{n:03d}/{s.label}", "format": s.fmt, "variant": s.variant, "mutation": s.mutation,
                "detail": s.detail} for n, b in enumerate(batches) for s in b]
    path.write_text(json.dumps({"samples": samples, "written": sorted(tally.written), "failed": sorted(tally.failed),
                                "violations": [v.__dict__ for v in tally.violations]}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
