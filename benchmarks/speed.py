"""How long pii-blur takes on panoramas as a user runs it, against the floor of decoding and encoding one.

    python benchmarks/speed.py [--data ../shared/data] [--repeat 3] [--jobs 0,1,2]
    python benchmarks/speed.py --stages [--repeat 2]

By default: four copies of the 8000x4000 street panorama (../shared/data/pano360, Amsterdam) in a
folder, and ``pii-blur DIR OUT`` run on it as a fresh process for each ``-j`` (the default, 1, 2;
model loading, worker start and the first image's maps included). Each round runs every ``-j`` once,
interleaved, so that the machine's load falls on all alike; the median of the rounds is reported.
The floor is decoding the panorama and encoding it again as a JPEG (Pillow, libjpeg-turbo, one
thread, quality 90), measured in the same run between the rounds. Printed: seconds per panorama,
its ratio to the floor, the peak resident memory of the largest process (one worker) and the
throughput against ``-j 1``.

With ``--stages``, the older per-stage table:

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
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PANO = "pano360/images/amsterdam_TMX7315120208-000022_pano_0001_000529.jpg"

ONE_RUN = """
import json, resource, sys, time
from pathlib import Path
from piiblur.pipeline import Blurrer, Settings
from piiblur.engines.worker_setup import keep_freed_memory
keep_freed_memory()  # as every pii-blur worker does
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


def stages(args: argparse.Namespace) -> int:
    """The per-stage table: a worker's second image, by stage, per case."""
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


RUN_MEASURED = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - start
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(code, wall, used.ru_maxrss / 1024, used.ru_utime + used.ru_stime)
"""


def floor_seconds(pano: Path, out: Path) -> float:
    """Decode the panorama and encode it again (Pillow, one thread): the least any tool spends on it."""
    start = time.perf_counter()
    with Image.open(pano) as image:
        pixels = np.asarray(image.convert("RGB"))
    Image.fromarray(pixels).save(out, quality=90)
    return time.perf_counter() - start


def run_cli(source: Path, out: Path, jobs: int, extra: list[str]) -> tuple[float, float, float]:
    """Wall seconds, the largest process's peak memory (MB) and the CPU seconds of all its processes, of one
    ``pii-blur DIR OUT`` run."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "piiblur", str(source), str(out), "-q", *extra]
    if jobs:
        command += ["-j", str(jobs)]
    done = subprocess.run([sys.executable, "-c", RUN_MEASURED, *command], check=True, capture_output=True,
                          text=True, env=os.environ)
    code, wall, peak, cpu = done.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"pii-blur -j {jobs} exited with {code}")
    return float(wall), float(peak), float(cpu)


def whole_process(args: argparse.Namespace) -> int:
    pano = args.data / PANO
    jobs = [int(j) for j in args.jobs.split(",")]
    walls: dict[int, list[float]] = {j: [] for j in jobs}
    cpus: dict[int, list[float]] = {j: [] for j in jobs}
    peaks: dict[int, float] = dict.fromkeys(jobs, 0.0)
    floors: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in"
        source.mkdir()
        for i in range(args.copies):
            shutil.copy(pano, source / f"pano_{i}.jpg")
        floors.append(floor_seconds(pano, Path(tmp) / "floor.jpg"))
        for _ in range(args.repeat):
            for j in jobs:
                wall, peak, cpu = run_cli(source, Path(tmp) / "out", j, args.extra.split())
                walls[j].append(wall)
                cpus[j].append(cpu)
                peaks[j] = max(peaks[j], peak)
                floors.append(floor_seconds(pano, Path(tmp) / "floor.jpg"))
    print_whole(walls, cpus, peaks, statistics.median(floors), args.copies)
    return 0


def print_whole(walls: dict[int, list[float]], cpus: dict[int, list[float]], peaks: dict[int, float], floor: float,
                copies: int) -> None:
    load = os.getloadavg()[0]
    print(f"floor: decode + encode of one panorama {floor:.2f} s (median); load average now {load:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'-j':>8} {'wall s':>7} {'s/pano':>7} {'x floor':>8} {'x -j 1 throughput':>18} {'peak MB':>8} "
          f"{'CPU s/pano':>10}  runs")
    one = statistics.median(walls[1]) if 1 in walls else None
    for j, runs in walls.items():
        wall = statistics.median(runs)
        per = wall / copies
        speedup = f"{one / wall:>18.2f}" if one else f"{'-':>18}"
        name = "default" if j == 0 else str(j)
        cpu = statistics.median(cpus[j]) / copies
        print(f"{name:>8} {wall:>7.1f} {per:>7.2f} {per / floor:>8.1f} {speedup} {peaks[j]:>8.0f} {cpu:>10.2f}  "
              + " ".join(f"{r:.1f}" for r in runs))
    print(f"whole-process wall time of 'pii-blur DIR OUT' on {copies} copies, model loading included; "
          "x floor = seconds per panorama / floor (issue 12: at most 12); peak MB = largest process (one worker); "
          "CPU s/pano = user + system seconds of all its processes per panorama (less sensitive to a busy machine)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the whole-process runs (each round runs every -j once, interleaved); "
                        "the median is reported. With --stages: runs per case, the fastest reported")
    parser.add_argument("--copies", type=int, default=4, help="copies of the panorama in the input folder")
    parser.add_argument("--jobs", default="0,1,2", help="the -j values to run, 0 = the default")
    parser.add_argument("--stages", action="store_true", help="the per-stage table instead (one worker)")
    parser.add_argument("--extra", default="", help="more pii-blur options for the whole-process runs")
    args = parser.parse_args()
    if not (args.data / PANO).exists():
        print(f"{args.data / PANO} not found: nothing to measure")
        return 0
    return stages(args) if args.stages else whole_process(args)


if __name__ == "__main__":
    sys.exit(main())
