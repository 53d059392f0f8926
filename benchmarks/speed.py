"""Seconds per image and per megapixel, split into decode, detect, blur and encode; peak memory.

    python benchmarks/speed.py [--data ../shared/data] [--repeat 2]

Each run is one fresh worker process that blurs the same file twice; the
second is reported (a batch's steady state), and the first, which also builds
the maps of the views of the sphere, is shown too. Each process does what a
``pii-blur -j 1`` worker does, so its peak resident memory is that of one
worker. Cases: an 8000x4000 street panorama (../shared/data/pano360,
Amsterdam), through the tile pyramid (``--projection planar``) and through
the views of the sphere (the default), and a 12-megapixel photo (a 4000x3000
crop of it, saved as an ordinary JPEG). Tiles with the float models are the
baseline of each image, and the figures are given as ratios to it too:
this machine is shared and noisy, so compare ratios across runs, not seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PANO = "pano360/images/amsterdam_TMX7315120208-000022_pano_0001_000529.jpg"

ONE_RUN = """
import json, resource, sys, time
from pathlib import Path
from piiblur.pipeline import Blurrer, Settings
from piiblur import runner
runner._keep_freed_memory()  # as every pii-blur worker does
start = time.perf_counter()
blurrer = Blurrer(Settings(precision=sys.argv[3], projection=sys.argv[4]))
load = time.perf_counter() - start
first = blurrer.process(Path(sys.argv[1]), Path(sys.argv[2] + ".first"))
result = blurrer.process(Path(sys.argv[1]), Path(sys.argv[2]))  # steady state, as in a batch
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"timings": result.timings, "status": result.status, "load": load, "peak_mb": peak,
                  "found": len(result.detections), "first": sum(first.timings.values())}))
"""


def run_once(source: Path, precision: str, projection: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(source), str(out / source.name), precision, projection],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the fastest is reported")
    args = parser.parse_args()
    pano = args.data / PANO
    if not pano.exists():
        print(f"{pano} not found: nothing to measure")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        photo = tmpdir / "photo_12mp.jpg"
        Image.open(pano).crop((2000, 500, 6000, 3500)).save(photo, quality=92)
        # (case, file, megapixels, projection, models); the first run of each file is the baseline
        cases = [
            ("panorama 8000x4000", pano, 32.0, "planar", "fp32"),
            ("panorama 8000x4000", pano, 32.0, "planar", "int8"),
            ("panorama 8000x4000", pano, 32.0, "auto", "int8"),
            ("photo 4000x3000", photo, 12.0, "planar", "fp32"),
            ("photo 4000x3000", photo, 12.0, "planar", "int8"),
        ]
        print(f"{'case':<20} {'path':<7} {'models':<6} {'total s':>8} {'s/MP':>6} {'decode':>7} {'detect':>7} "
              f"{'blur':>6} {'encode':>7} {'write':>6} {'peak MB':>8} {'found':>6} {'x base':>7} {'1st img':>7}")
        baselines: dict[str, float] = {}
        for name, path, mp, projection, precision in cases:
            runs = [run_once(path, precision, projection, tmpdir) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: sum(r["timings"].values()))
            t = best["timings"]
            total = sum(t.values())
            baseline = baselines.setdefault(name, total)
            route = "sphere" if projection == "auto" else "tiles"
            print(f"{name:<20} {route:<7} {precision:<6} {total:>8.2f} {total / mp:>6.3f} {t.get('decode', 0):>7.2f} "
                  f"{t.get('detect', 0):>7.2f} {t.get('blur', 0):>6.2f} {t.get('encode', 0):>7.2f} "
                  f"{t.get('write', 0):>6.2f} {max(r['peak_mb'] for r in runs):>8.0f} {best['found']:>6} "
                  f"{total / baseline:>7.2f} {best['first']:>7.2f}")
    print("times are a worker's second image (as in a batch); '1st img' is its first, which also builds the maps of"
          " the views of the sphere; model loading (about 0.3 s, once per worker) is left out; peak MB is the whole"
          " worker process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
