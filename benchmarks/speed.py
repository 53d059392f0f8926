"""Seconds per image and per megapixel, split into decode, detect, blur and encode; peak memory.

    python benchmarks/speed.py [--data ../shared/data] [--repeat 2]

Cases: an 8000x4000 street panorama (../shared/data/pano360, Amsterdam) and a
12-megapixel photo (a 4000x3000 crop of it, saved as an ordinary JPEG). Each
run is one fresh process doing what ``pii-blur -j 1`` does for one file, so
its peak resident memory is that of one worker. The float models run in the
same session as a baseline, and the figures are given as ratios to it too:
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
start = time.perf_counter()
blurrer = Blurrer(Settings(precision=sys.argv[3]))
load = time.perf_counter() - start
result = blurrer.process(Path(sys.argv[1]), Path(sys.argv[2]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"timings": result.timings, "status": result.status, "load": load, "peak_mb": peak,
                  "found": len(result.detections)}))
"""


def run_once(source: Path, precision: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(source), str(out / source.name), precision],
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
        cases = [("panorama 8000x4000", pano, 32.0), ("photo 4000x3000", photo, 12.0)]
        print(f"{'case':<20} {'models':<6} {'total s':>8} {'s/MP':>6} {'decode':>7} {'detect':>7} {'blur':>6} "
              f"{'encode':>7} {'write':>6} {'peak MB':>8} {'found':>6} {'x fp32':>7}")
        for name, path, mp in cases:
            baseline = None
            for precision in ("fp32", "int8"):
                runs = [run_once(path, precision, tmpdir) for _ in range(args.repeat)]
                best = min(runs, key=lambda r: sum(r["timings"].values()))
                t = best["timings"]
                total = sum(t.values())
                baseline = baseline or total
                print(f"{name:<20} {precision:<6} {total:>8.2f} {total / mp:>6.3f} {t.get('decode', 0):>7.2f} "
                      f"{t.get('detect', 0):>7.2f} {t.get('blur', 0):>6.2f} {t.get('encode', 0):>7.2f} "
                      f"{t.get('write', 0):>6.2f} {max(r['peak_mb'] for r in runs):>8.0f} {best['found']:>6} "
                      f"{total / baseline:>7.2f}")
    print("times exclude model loading (about 0.3 s per worker, once); peak MB is the whole worker process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
