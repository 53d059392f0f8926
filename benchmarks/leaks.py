"""Does any decoder still see, in what pii-blur wrote, a face or plate that it sees in the input?

    python benchmarks/fuzz.py --count 400 --seed 40 --keep /tmp/fz   # first: mutated files and outputs
    python benchmarks/leaks.py /tmp/fz [--json leaks.json]
    python benchmarks/leaks.py INPUT OUTPUT_DIR                        # or any run of pii-blur INPUT OUTPUT_DIR

``fuzz.py`` checks that every mutated file is written or fails with one line. This checks what was
written. A decoder other than pii-blur's may read a damaged or unusual file differently: it may show
a face where pii-blur's decoder showed grey, a frame pii-blur did not read, or an image hidden in the
metadata. Each output (blurred or copied) is decoded every way at hand:

- Pillow, every frame, turned upright by its EXIF orientation (the first also as stored, as a viewer
  that ignores the tag shows it);
- OpenCV (``imread``, which turns by the orientation too, and ``imreadmulti`` for every page);
- a JPEG by libjpeg 6b, 9f and libjpeg-turbo 2.1 (jpeglib), as stored: each reads a damaged stream its
  own way;
- every JPEG or PNG stream that starts anywhere after the file's first byte (thumbnails, previews,
  appended images), opened by Pillow.

The decoders run in a process of their own (on some hostile files jpeglib aborts, and OpenCV's AVIF
reader frees memory twice); one that kills it is counted and shows nothing.

pii-blur's own detectors (the default settings) then look at each, as pii-blur searches the file: a
picture of the file's size on the sphere when the file is a panorama, any other as a flat photo. A
**leak** is a face or plate that a decoder shows in the output at a place where the same decoder,
reading the input the same way, shows it too (boxes overlapping by IoU 0.3), scored at least 0.5 and at
least three quarters of the input's score, with at least a quarter of the fine detail it had in the
middle of its box (the middle half each way, where eyes, mouth and characters are; variance of the
Laplacian): it was there to be seen, and is still there. A blurred face keeps its hair round a smooth
blob, which the net may still score 0.3-0.6; that is not a leak. A find in the output alone is counted
but is not a leak.
Prints counts per decoder and every leak, and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import jpeglib
import numpy as np
from PIL import Image, ImageOps, ImageSequence

from piiblur.detections import Detections, box_overlap
from piiblur.formats import read_image_bytes
from piiblur.formats.jpeg.markers import without_empty_segments
from piiblur.pipeline import Blurrer, Settings
from piiblur.projections.sphere_geometry import Equirect

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - a project dependency
    pass

Image.MAX_IMAGE_PIXELS = 50_000_000
MAX_SIDE = 4096  # pictures decoded larger are shrunk before searching (the fuzz pictures are small)
SIGNATURES = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
MATCH_IOU = 0.3
LEAK_SCORE = 0.5  # a find in the output is a leak from this score ...
LEAK_SHARE = 0.75  # ... and from this share of the score of the same find in the input
LEAK_DETAIL = 0.25  # ... keeping this share of the fine detail in the middle of its box


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def pillow_frames(data: bytes) -> Iterator[tuple[str, np.ndarray]]:
    with Image.open(io.BytesIO(data)) as img:
        for index, frame in enumerate(ImageSequence.Iterator(img)):
            if index == 0 and frame.getexif().get(0x0112, 1) not in (None, 1):  # also as a viewer ignoring it
                yield "pillow frame 0 as stored", _rgb(frame)
            yield f"pillow frame {index}", _rgb(ImageOps.exif_transpose(frame) if index == 0 else frame)


def opencv_frames(data: bytes) -> Iterator[tuple[str, np.ndarray]]:
    buffer = np.frombuffer(data, np.uint8)
    one = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if one is not None:
        yield "opencv", cv2.cvtColor(one, cv2.COLOR_BGR2RGB)
    ok, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_COLOR)
    for index, page in enumerate(pages if ok else [])[1:]:
        if page is not None and page.ndim == 3:
            yield f"opencv page {index + 1}", cv2.cvtColor(page, cv2.COLOR_BGR2RGB)


LIBJPEGS = ("6b", "9f", "turbo210")  # libjpeg versions that read damaged streams differently


def libjpeg_frames(data: bytes) -> Iterator[tuple[str, np.ndarray]]:
    """A JPEG read by each of ``LIBJPEGS`` (jpeglib): where a stream is damaged, each shows what it can."""
    if not data.startswith(b"\xff\xd8"):
        return
    # jpeglib's marker reader corrupts its heap on an empty APPn or COM segment, which libjpeg itself skips;
    # a header that pii-blur's walker cannot follow is given as it is
    with contextlib.suppress(Exception):
        data = without_empty_segments(data)
    with tempfile.TemporaryDirectory(prefix="leaks-") as tmp:
        path = Path(tmp) / "in.jpg"
        path.write_bytes(data)
        for version in LIBJPEGS:
            jpeglib.version.set(version)
            try:
                picture = jpeglib.read_spatial(str(path)).spatial
            except Exception:  # this libjpeg refuses the stream: it shows nothing
                continue
            if picture is not None and picture.ndim == 3 and picture.shape[2] in (1, 3):  # not CMYK
                yield f"libjpeg {version}", np.ascontiguousarray(np.repeat(picture, 3 // picture.shape[2], 2))


def carved(data: bytes) -> Iterator[tuple[str, np.ndarray]]:
    """Every JPEG or PNG stream that begins after the first byte and that Pillow can open."""
    for kind, signature in SIGNATURES.items():
        at = data.find(signature, 1)
        while at != -1:
            try:
                with Image.open(io.BytesIO(data[at:])) as img:
                    yield f"{kind} at byte {at}", _rgb(img)
            except Exception:  # a stream that does not open is not a picture anyone sees
                pass
            at = data.find(signature, at + 1)


_DECODER: list[ProcessPoolExecutor] = []  # one process, replaced when a decoder kills it
ABORTED = Counter[str]()


SOURCES = (pillow_frames, opencv_frames, libjpeg_frames, carved)


def _decode_with(data: bytes, sources: tuple[int, ...]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for index in sources:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, rgb in SOURCES[index](data):
                    if rgb.ndim == 3 and min(rgb.shape[:2]) >= 16:
                        found[name] = _shrunk(rgb)
        except Exception:  # a decoder that refuses the file shows nothing
            continue
    return found


def _in_decoder_process(data: bytes, sources: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    if not _DECODER:
        _DECODER.append(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))
    try:
        return _DECODER[0].submit(_decode_with, data, sources).result(timeout=decode_seconds(len(data)))
    except (BrokenProcessPool, TimeoutError):
        # a decoder may also hang: a libjpeg whose heap a hostile file corrupted waits on malloc's lock for
        # ever. Its process is killed (Python 3.11's executor has no public way), else leaving it running
        # would keep this program from ever exiting (the executor joins its workers at exit).
        executor = _DECODER.pop()
        for worker in list(getattr(executor, "_processes", {}).values()):
            worker.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        return None


def decode_seconds(size: int) -> float:
    """How long every decoder together may take on a file of ``size`` bytes before it counts as hung."""
    return 30.0 + 10.0 * size / 2**20


def decodings(data: bytes) -> dict[str, np.ndarray]:
    """Each way of reading the file that gives a picture: its name and the picture. The decoders run in
    a process of their own: on some hostile files jpeglib aborts or hangs and OpenCV frees memory twice. When
    one kills or hangs that process, each is run again alone; one that does so again shows nothing and is
    counted in ``ABORTED``."""
    every = tuple(range(len(SOURCES)))
    found = _in_decoder_process(data, every)
    if found is not None:
        return found
    found = {}
    for index in every:
        alone = _in_decoder_process(data, (index,))
        if alone is None:
            ABORTED[SOURCES[index].__name__.removesuffix("_frames")] += 1
        found.update(alone or {})
    return found


def _shrunk(rgb: np.ndarray) -> np.ndarray:
    side = max(rgb.shape[:2])
    if side <= MAX_SIDE:
        return np.ascontiguousarray(rgb)
    scale = MAX_SIDE / side
    return cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    inter = box_overlap(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def middle_detail(rgb: np.ndarray, box: np.ndarray) -> float:
    """The variance of the Laplacian of the grey levels in the middle half (each way) of ``box``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) / 4, (y2 - y1) / 4
    h, w = rgb.shape[:2]
    xa, xb = max(0, round(x1 + dx)), min(w, max(round(x2 - dx), round(x1 + dx) + 3))
    ya, yb = max(0, round(y1 + dy)), min(h, max(round(y2 - dy), round(y1 + dy) + 3))
    crop = rgb[ya:yb, xa:xb].astype(np.float32).mean(axis=2)
    return float(cv2.Laplacian(crop, cv2.CV_32F).var()) if crop.size else 0.0


def geometry(blurrer: Blurrer, data: bytes, label: str) -> Equirect | None:
    """Where pii-blur puts the file on the sphere, or None (a flat photo, or a file it cannot read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return blurrer.geometry(read_image_bytes(data, Path(label), 50_000_000))
    except Exception:  # a file pii-blur refuses is searched flat
        return None


def leaks_in(blurrer: Blurrer, before: bytes, after: bytes, label: str) -> tuple[list[str], int, list[str]]:
    """The leaks in one output, how many finds were in the output alone, and the decodings of the output."""
    outputs = decodings(after)
    inputs = decodings(before) if outputs else {}
    geo = geometry(blurrer, before, label)

    def search(rgb: np.ndarray) -> Detections:
        on_sphere = geo is not None and rgb.shape[:2] == (geo.height, geo.width)
        return blurrer.detect(rgb, geo if on_sphere else None)

    found, alone = [], 0
    for name, rgb in outputs.items():
        seen = search(rgb)
        if not len(seen):
            continue
        source = inputs.get(name)
        there = search(source) if source is not None and source.shape == rgb.shape else Detections.empty()
        # the input's finds of the same class at the same place, for each find in the output
        matches = (iou(seen.xyxy, there.xyxy) >= MATCH_IOU) & (seen.class_ids[:, None] == there.class_ids[None, :])
        for index, (box, score, kind) in enumerate(zip(seen.xyxy, seen.scores, seen.class_names, strict=True)):
            same = there.scores[matches[index]]
            if not same.size:
                alone += 1
                continue
            kept = middle_detail(rgb, box) / max(middle_detail(source, box), 1e-6)
            if score >= max(LEAK_SCORE, LEAK_SHARE * same.max()) and kept >= LEAK_DETAIL:
                found.append(f"{name}: {kind} at {np.round(box).astype(int).tolist()} score {score:.2f} "
                             f"(input {same.max():.2f}), {kept:.0%} of its detail")
    return found, alone, sorted(outputs)


def pairs(args: argparse.Namespace) -> Iterator[tuple[str, Path, Path]]:
    """(name, input, output) for every output written: from a fuzz folder, or an input and output folder."""
    if args.output is None:
        for number, batch in enumerate(json.loads((args.input / "samples.json").read_text())):
            name = f"b{number:03d}"
            for sample in batch:
                yield f"{name}/{sample['label']}", args.input / "in" / name / sample["label"], \
                    args.input / "out" / name / sample["label"]
        return
    for source in sorted(p for p in args.input.rglob("*") if p.is_file()):
        label = source.relative_to(args.input).as_posix()
        yield label, source, args.output / label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="a folder kept by benchmarks/fuzz.py --keep, or pii-blur's INPUT")
    parser.add_argument("output", type=Path, nargs="?", help="pii-blur's OUTPUT_DIR for that INPUT")
    parser.add_argument("--json", type=Path, help="write the leaks here")
    args = parser.parse_args(argv)
    blurrer = Blurrer(Settings())
    decoders: Counter[str] = Counter()
    outputs = alone_total = 0
    leaks: dict[str, list[str]] = {}
    for label, source, target in pairs(args):
        if not target.is_file():
            continue
        outputs += 1
        found, alone, ways = leaks_in(blurrer, source.read_bytes(), target.read_bytes(), label)
        alone_total += alone
        decoders.update(w.split(" at byte")[0].split(" frame")[0].split(" page")[0].split(" as stored")[0]
                        for w in ways)
        if found:
            leaks[label] = found
        if outputs % 100 == 0:
            print(f"{outputs} outputs looked at, {len(leaks)} with a leak", flush=True)
    print(f"\n{outputs} outputs; pictures read from them, by decoder:")
    for decoder, count in decoders.most_common():
        print(f"  {decoder:<18}{count:>7}")
    for decoder, count in ABORTED.items():
        print(f"  {decoder} killed or hung the reading process on {count} file(s) (input or output): they show it "
              "nothing")
    print(f"finds in an output that its input does not show at the same place (not leaks): {alone_total}")
    print(f"outputs with a leak: {len(leaks)}")
    for where, lines in sorted(leaks.items()):
        print(f"  {where}")
        for line in lines[:4]:
            print(f"      {line}")
    if args.json:
        args.json.write_text(json.dumps(leaks, indent=1))
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
