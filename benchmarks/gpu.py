"""The GPU path: throughput with onnxruntime's CUDA provider against the CPU on the same machine.

    pip install onnxruntime-gpu   # in place of onnxruntime, on a machine with an NVIDIA GPU
    python benchmarks/gpu.py [--data ../shared/data]

The same four panoramas as ``throughput.py`` (81 megapixels, once), each configuration
in a fresh process: the CPU (all cores as workers, int8 models, the default
without a GPU), then ``--device cuda`` (float models) with one worker and with
two (one decodes and encodes while the other's detection runs on the GPU).
Prints megapixels per second and where the time goes. Runs in about two
minutes on a GPU machine with 16 cores; without the data, or without a CUDA
provider, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import DEFAULT_DATA, PANORAMAS, run_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"onnxruntime {ort.__version__} has no CUDA provider here ({ort.get_available_providers()}): "
              "pip install onnxruntime-gpu on a GPU machine")
        return 0
    paths = [args.data / p for p in PANORAMAS]
    if not all(p.exists() for p in paths):
        print(f"{args.data}/pano360 not found: nothing to measure")
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    configs = [("cpu", cores, 1, f"CPU, {cores} workers x 1 thread"),
               ("cuda", 1, max(1, cores // 2), "GPU, 1 worker"),
               ("cuda", 2, max(1, cores // 4), "GPU, 2 workers")]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        for p in paths:
            shutil.copy2(p, src / p.name)
        print(f"{'configuration':<32} {'MP':>6} {'seconds':>8} {'MP/s':>7}  where the time goes (s, summed)")
        for device, workers, threads, name in configs:
            r = run_config("local", workers, threads, src, out, device)
            split = ", ".join(f"{k} {v:.1f}" for k, v in r["split"].items())
            print(f"{name:<32} {r['megapixels']:>6.1f} {r['seconds']:>8.1f} {r['megapixels'] / r['seconds']:>7.2f}  "
                  f"{split or '(split measured in-process only: 1 worker)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
