"""Where the time goes for one panorama, one worker (``-j 1``): exclusive seconds per stage.

    python benchmarks/profile_pano.py [IMAGE] [--threads 1] [--batched | --one-view]

The stages are timed by wrapping the functions that do them (each stage's own time, what it calls
in other stages left out): rendering the views (remap), each net's onnxruntime runs, their input
blobs and output decoding, mapping back and merging on the sphere, the closer look at doubtful
finds, the blur on the sphere, decode and encode. The image is processed twice in one process and
the second (a batch's steady state) is reported; the first also builds the maps of the views.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT = (Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pano360" / "images"
           / "amsterdam_TMX7315120208-000022_pano_0001_000529.jpg")


class Profile:
    """Exclusive time per stage: a stage called inside another is subtracted from it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[list[float]] = []

    def wrap(self, owner: Any, attr: str, stage: str | Callable[..., str]) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # another version of pii-blur, without this function
            return
        name_of = stage if callable(stage) else (lambda *args, **kwargs: stage)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append([time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                start, inner = self.stack.pop()
                spent = time.perf_counter() - start
                name = name_of(*args, **kwargs)
                self.seconds[name] += spent - inner
                self.calls[name] += 1
                if self.stack:
                    self.stack[-1][1] += spent

        setattr(owner, attr, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def instrument(profile: Profile) -> None:
    import onnxruntime as ort

    from piiblur import pipeline
    from piiblur.detectors import base, centerface, yolo_plate
    from piiblur.projections import sphere_blur, sphere_detect, sphere_geometry

    profile.wrap(sphere_geometry, "render", "render views (remap)")  # one-off views: the closer looks
    profile.wrap(sphere_geometry.RingRenderer, "render", "render views (remap)")  # the searched rings
    profile.wrap(sphere_geometry, "_unturned_maps", "view maps")
    profile.wrap(sphere_geometry, "_view_maps", "view maps")  # before RingRenderer
    profile.wrap(base.OnnxDetector, "run", "net input blobs")
    profile.wrap(base, "pad_to_multiple", "net input blobs")
    profile.wrap(ort.InferenceSession, "run", net_name)
    profile.wrap(centerface.CenterFace, "detect", "face output decoding")
    profile.wrap(yolo_plate.YoloPlate, "detect", "plate output decoding")
    profile.wrap(sphere_detect, "to_sphere", "merge (map back, dedupe)")
    profile.wrap(sphere_detect, "deduplicate_on_sphere", "merge (map back, dedupe)")
    profile.wrap(sphere_detect, "confirm", "confirm (closer look), own")
    profile.wrap(sphere_detect, "detect_sphere", "detection loop, own")
    profile.wrap(sphere_blur, "blur", "blur on the sphere")
    profile.wrap(pipeline, "read_image_bytes", "decode")
    profile.wrap(pipeline, "encode_image", "encode (lossless JPEG)")


def net_name(session: Any, *args: Any, **kwargs: Any) -> str:
    return "face net" if "centerface" in str(session._model_path) else "plate net"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("PIIBLUR_THREADS", "1")))
    parser.add_argument("--arena", choices=["on", "off"], help="onnxruntime's CPU memory arena (default: pii-blur's)")
    args = parser.parse_args()
    if not args.image.exists():
        print(f"{args.image} not found: nothing to measure")
        return 0
    from piiblur.engines.worker_setup import set_worker_threads
    from piiblur.pipeline import Blurrer
    from piiblur.settings import Settings

    if args.arena:
        from piiblur.detectors import base
        base.CPU_MEM_ARENA = args.arena == "on"
    profile = Profile()
    instrument(profile)
    set_worker_threads(args.threads)
    blurrer = Blurrer(Settings(threads=args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        first = blurrer.process(args.image, Path(tmp) / "first.jpg")
        profile.reset()
        start, cpu = time.perf_counter(), time.process_time()
        result = blurrer.process(args.image, Path(tmp) / args.image.name)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.reason:
        print(f"failed: {result.reason}")
    report(profile, wall, sum(first.timings.values()), len(result.detections))
    print(f"CPU time of the second image {cpu:.2f} s ({args.threads} threads); load average {os.getloadavg()[0]:.1f}")
    return 0


def report(profile: Profile, wall: float, first: float, found: int) -> None:
    accounted = sum(profile.seconds.values())
    rows = sorted(profile.seconds.items(), key=lambda kv: -kv[1])
    print(f"{'stage':<30} {'seconds':>8} {'share':>6} {'calls':>6}")
    for stage, seconds in rows:
        print(f"{stage:<30} {seconds:>8.2f} {seconds / wall:>6.1%} {profile.calls[stage]:>6}")
    print(f"{'other (job, I/O, metadata)':<30} {wall - accounted:>8.2f} {(wall - accounted) / wall:>6.1%}")
    print(f"{'total (second image)':<30} {wall:>8.2f}   first image {first:.2f} s, {found} found, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
