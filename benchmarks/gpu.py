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

``--diagnose`` looks for where a detection run's time goes on the GPU instead
(about a minute): a bare session's run per view size, warm and when the input
shape changes, then the mean run inside the pipeline on one panorama with the
session's CPU thread pool as it is, with one thread, and without spinning.
Measured on an H100 (README): 5-10 ms per bare run, about 130 ms per run
inside the pipeline; the cause was not yet found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import DEFAULT_DATA, PANORAMAS, run_config


def diagnose(panorama: Path) -> None:
    """Bare sessions against sessions inside the pipeline, on the CUDA provider."""
    import numpy as np
    import onnxruntime as ort

    from piiblur.detectors import base
    from piiblur.pipeline import Blurrer, Settings

    base.load_cuda_libraries()
    shapes = [(1344, 1344), (1600, 1344), (1472, 1472), (768, 768)]
    sessions = {stem: base.make_session(stem, base.OnnxRuntimeOptions(device="cuda", precision="fp32"))
                for stem in ("centerface", "plate_yolov8n_street")}
    for stem, session in sessions.items():
        name = session.get_inputs()[0].name

        def run_ms(shape: tuple[int, int], session: ort.InferenceSession = session, name: str = name) -> float:
            blob = np.random.default_rng(0).random((1, 3, *shape), dtype=np.float32) * 255
            start = time.perf_counter()
            session.run(None, {name: blob})
            return (time.perf_counter() - start) * 1000

        first = [run_ms(shape) for shape in shapes]
        warm = [min(run_ms(shape) for _ in range(3)) for shape in shapes]
        switching = [run_ms(shapes[i % 2]) for i in range(6)]
        print(f"bare {stem:<14} first run per shape {[round(v) for v in first]} ms; warm {[round(v, 1) for v in warm]}"
              f" ms; alternating two shapes {[round(v) for v in switching]} ms")
    blob = np.random.default_rng(0).random((1, 3, 1344, 1344), dtype=np.float32) * 255
    in_turn = []
    for _ in range(3):  # as the pipeline does: the face net, then the plate net, on each view
        for session in sessions.values():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: blob})
            in_turn.append((time.perf_counter() - start) * 1000)
    print(f"bare, the two nets in turn on one shape: {[round(v, 1) for v in in_turn]} ms")
    runs = [0.0, 0]
    plain_run = base.OnnxDetector.run

    def counted(self, rgb, pad_value=0, scale=1.0):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return plain_run(self, rgb, pad_value, scale)
        finally:
            runs[0] += time.perf_counter() - start
            runs[1] += 1

    base.OnnxDetector.run = counted  # type: ignore[method-assign]
    plain_options = ort.SessionOptions
    variants = {"threads as they are": (0, "1"), "1 intra-op thread": (1, "1"), "no spinning": (0, "0")}
    for label, (threads, spinning) in variants.items():
        def options_with_spinning(spinning: str = spinning) -> ort.SessionOptions:
            options = plain_options()
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
            return options

        ort.SessionOptions = options_with_spinning  # what make_session builds its sessions with
        blurrer = Blurrer(Settings(device="cuda", threads=threads))
        ort.SessionOptions = plain_options
        blurrer.process(panorama, None)  # warm-up
        runs[:] = [0.0, 0]
        start = time.perf_counter()
        result = blurrer.process(panorama, None)
        total = time.perf_counter() - start
        print(f"pipeline, {label:<20} {total:6.2f} s for {panorama.name}; {runs[1]} runs, "
              f"{1000 * runs[0] / max(runs[1], 1):6.1f} ms each; timings {result.timings}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--diagnose", action="store_true", help="where a run's time goes on the GPU")
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
    if args.diagnose:
        diagnose(paths[0])
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
