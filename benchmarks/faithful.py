"""Faithful output: run pii-blur's writers over ../shared/data/metadata_and_formats and pano360.

Per file: what metadata was kept (EXIF, GPS, XMP, GPano, ICC, IPTC), whether pixels outside the blur are
identical (JPEG: identical DCT coefficients outside the re-encoded MCUs), the size change, what happened to
embedded images, and how broken files fail. The "blur" is a fixed box (the middle ninth of the picture,
blackened) so that the run needs no detector and every file is written.

    .venv/bin/python benchmarks/faithful.py [DATA_DIR]

Exits 0 (saying so) when the shared data is missing.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from piiblur.formats import IMAGE_EXTENSIONS, ImageError, encode_image, read_image

ROOT = Path(__file__).resolve().parent.parent
SETS = ("metadata_and_formats", "pano360")


def metadata(data: bytes) -> set[str]:
    found = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            exif = image.getexif()
            if len(exif):
                found.add("EXIF")
            if exif.get_ifd(0x8825):
                found.add("GPS")
            if image.info.get("icc_profile"):
                found.add("ICC")
    except Exception:
        pass
    if b"<x:xmpmeta" in data or b"http://ns.adobe.com/xap/1.0/" in data:
        found.add("XMP")
    if b"GPano:" in data:
        found.add("GPano")
    if b"Photoshop 3.0\x008BIM\x04\x04" in data or (b"\x1c\x02" in data[:200000] and b"8BIM" in data):
        found.add("IPTC")
    return found


def identical_outside(source, pixels: np.ndarray, data: bytes) -> str:
    changed = (pixels != source.pixels)
    changed = changed.any(axis=2) if changed.ndim == 3 else changed
    if source.format in ("JPEG", "MPO"):
        import tempfile

        import jpeglib

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "a.jpg").write_bytes(source.data)
            (Path(tmp) / "b.jpg").write_bytes(data)
            try:
                a, b = jpeglib.read_dct(f"{tmp}/a.jpg"), jpeglib.read_dct(f"{tmp}/b.jpg")
                a.load()
                b.load()
            except Exception as exc:
                return f"coefficients unreadable ({exc})"
        factors = np.asarray(a.samp_factor).reshape(-1, 2)
        comps = [c for c in (a.Y, a.Cb, a.Cr, a.K) if c is not None]
        if len(comps) == 1:
            factors = np.ones((1, 2), int)
        vm, hm = int(factors[:, 0].max()), int(factors[:, 1].max())
        rows, cols = -(-changed.shape[0] // (8 * vm)), -(-changed.shape[1] // (8 * hm))
        pad = np.zeros((rows * 8 * vm, cols * 8 * hm), bool)
        pad[: changed.shape[0], : changed.shape[1]] = changed
        mcus = pad.reshape(rows, 8 * vm, cols, 8 * hm).any(axis=(1, 3))
        same = True
        for i, (x, y) in enumerate(zip(comps, [c for c in (b.Y, b.Cb, b.Cr, b.K) if c is not None], strict=False)):
            if x.shape != y.shape:
                return "coefficients NOT identical (layout changed)"
            blocks = np.repeat(np.repeat(mcus, factors[i, 0], 0), factors[i, 1], 1)[: x.shape[0], : x.shape[1]]
            same &= bool(np.array_equal(x[~blocks], y[~blocks]))
        return "coefficients identical" if same else "coefficients NOT identical (lossy re-encode)"
    try:
        back = read_image_bytes(data, source.path.suffix)
    except ImageError as exc:
        return f"output unreadable: {exc}"
    if back.pixels.shape != pixels.shape or back.pixels.dtype != pixels.dtype:
        return f"pixels changed layout ({back.pixels.dtype} {back.pixels.shape})"
    if np.array_equal(back.pixels[~changed], pixels[~changed]):
        return "pixels identical"
    return "pixels differ (lossy format)"


def read_image_bytes(data: bytes, suffix: str):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        return read_image(Path(handle.name))


def main() -> int:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    if not data_dir.is_dir():
        print(f"shared data not found at {data_dir}: nothing to measure")
        return 0
    counts = {"ok": 0, "failed": 0, "metadata lost": 0, "orientation-1-only EXIF not written (AVIF)": 0,
              "not identical": 0}
    for name in SETS:
        folder = data_dir / name
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        print(f"== {name}: {len(files)} files")
        for path in files:
            label = path.relative_to(folder)
            try:
                source = read_image(path)
                pixels = source.pixels.copy()
                h, w = pixels.shape[:2]
                pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 0
                later = [frame.pixels for frame in source.later]  # later frames written back unchanged
                encoded = encode_image(source, pixels, later if source.later else None)
            except ImageError as exc:
                counts["failed"] += 1
                print(f"FAILED  {label}: {exc}")
                continue
            before, after = metadata(source.data), metadata(encoded.data)
            lost = before - after
            same = identical_outside(source, pixels, encoded.data)
            counts["ok"] += 1
            if lost == {"EXIF"} and any(n.startswith("EXIF held only orientation 1") for n in encoded.notes):
                lost, kept_in_meaning = set(), "; EXIF held only orientation 1: not written (AVIF keeps it in irot)"
                counts["orientation-1-only EXIF not written (AVIF)"] += 1
            else:
                kept_in_meaning = ""
            counts["metadata lost"] += bool(lost)
            counts["not identical"] += "NOT" in same or "differ" in same
            kept = ",".join(sorted(before & after)) or "-"
            embedded = [n for n in encoded.notes if any(k in n for k in ("thumbnail", "preview", "MPO", "XMP",
                                                                         "FlashPix", "appended", "HEIF"))]
            print(f"ok      {label}: {source.format} {source.mode} {source.pixels.dtype}; kept {kept}"
                  f"{'; LOST ' + ','.join(sorted(lost)) if lost else ''}{kept_in_meaning}; {same}; "
                  f"size {len(encoded.data) / len(source.data) - 1:+.1%}; "
                  f"embedded: {'; '.join(embedded) or 'none'}")
    print(f"== summary: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
