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
shape changes, then the mean run inside the pipeline on one panorama (the whole
run and its ``session.run`` alone) as pii-blur runs it, with the session's CPU
threads spinning, with one thread, and with onnxruntime's CPU memory arena on
(pii-blur turns it off; without it, each run's host buffers are allocated
anew). ``--diagnose --device cpu`` runs the same on the CPU: a check of the
script itself where no GPU is lent (until stop 27 it called a ``run`` whose
signature had changed, and would have failed on the GPU).
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


def diagnose(panorama: Path, device: str = "cuda") -> None:
    """Bare sessions against sessions inside the pipeline (``device`` cpu: the same measurements on the CPU
    provider, to check this script where no GPU is lent)."""
    import numpy as np
    import onnxruntime as ort

    from piiblur.detectors import base
    from piiblur.pipeline import Blurrer, Settings

    precision = "fp32" if device == "cuda" else "int8"
    if device == "cuda":
        base.load_cuda_libraries()
    shapes = [(1344, 1344), (1600, 1344), (1472, 1472), (768, 768)]
    sessions = {stem: base.make_session(stem, base.OnnxRuntimeOptions(device=device, precision=precision))
                for stem in ("centerface", "plate_yolov8n_street")}
    for stem, session in sessions.items():
        name, channels = session.get_inputs()[0].name, session.get_inputs()[0].shape[1]

        def blob_of(shape: tuple[int, int], channels: int = channels) -> np.ndarray:
            h, w = shape if channels == 3 else (shape[0] // 2, shape[1] // 2)  # a space-to-depth input
            return np.random.default_rng(0).random((1, channels, h, w), dtype=np.float32) * 255

        def run_ms(shape: tuple[int, int], session: ort.InferenceSession = session, name: str = name,
                   blob_of=blob_of) -> float:
            blob = blob_of(shape)
            start = time.perf_counter()
            session.run(None, {name: blob})
            return (time.perf_counter() - start) * 1000

        first = [run_ms(shape) for shape in shapes]
        warm = [min(run_ms(shape) for _ in range(3)) for shape in shapes]
        switching = [run_ms(shapes[i % 2]) for i in range(6)]
        print(f"bare {stem:<20} first run per shape {[round(v) for v in first]} ms; warm "
              f"{[round(v, 1) for v in warm]} ms; alternating two shapes {[round(v) for v in switching]} ms")
    # inside the pipeline: each net's whole run (input blob, session, outputs) and its session.run alone
    runs = {"whole": [0.0, 0], "session.run": [0.0, 0]}
    plain_run = base.OnnxDetector.run

    def timed(key: str, call, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            runs[key][0] += time.perf_counter() - start
            runs[key][1] += 1

    def counted(self, images):  # type: ignore[no-untyped-def]
        session = self.session
        if not getattr(session, "timed", False):
            plain = session.run
            session.run = lambda *a, **k: timed("session.run", plain, *a, **k)
            session.timed = True
        return timed("whole", plain_run, self, images)

    base.OnnxDetector.run = counted  # type: ignore[method-assign]
    plain_options = ort.SessionOptions
    variants = {"as pii-blur runs": (0, "0", False), "threads spinning": (0, "1", False),
                "1 intra-op thread": (1, "0", False), "CPU memory arena on": (0, "0", True)}
    for label, (threads, spinning, arena) in variants.items():
        ort.SessionOptions = _options_class(plain_options, spinning, arena)
        blurrer = Blurrer(Settings(device=device, precision=precision, threads=threads))
        ort.SessionOptions = plain_options
        blurrer.process(panorama, None)  # warm-up
        runs.update({"whole": [0.0, 0], "session.run": [0.0, 0]})
        start = time.perf_counter()
        result = blurrer.process(panorama, None)
        total = time.perf_counter() - start
        whole, bare = runs["whole"], runs["session.run"]
        print(f"pipeline, {label:<20} {total:6.2f} s for {panorama.name}; {whole[1]} runs, "
              f"{1000 * whole[0] / max(whole[1], 1):6.1f} ms each, of which session.run "
              f"{1000 * bare[0] / max(bare[1], 1):6.1f} ms; timings {result.timings}")
    base.OnnxDetector.run = plain_run  # type: ignore[method-assign]


def _options_class(plain: type, spinning: str, arena: bool) -> type:
    """onnxruntime's SessionOptions with the thread pools' spinning and (``arena``) the CPU memory arena set
    whatever make_session sets (until stop 27 make_session overwrote the variant's spinning): what a
    variant's sessions are built with."""

    class Options(plain):  # type: ignore[misc, valid-type]
        def add_session_config_entry(self, key: str, value: str) -> None:
            super().add_session_config_entry(key, spinning if key.endswith(".allow_spinning") else value)

        def __setattr__(self, key: str, value: object) -> None:
            super().__setattr__(key, True if key == "enable_cpu_mem_arena" and arena else value)

    return Options


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--diagnose", action="store_true", help="where a run's time goes on the GPU")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="for --diagnose: cpu runs the same measurements on the CPU (a check of this script)")
    args = parser.parse_args()
    import onnxruntime as ort

    if args.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"onnxruntime {ort.__version__} has no CUDA provider here ({ort.get_available_providers()}): "
              "pip install onnxruntime-gpu on a GPU machine")
        return 0
    paths = [args.data / p for p in PANORAMAS]
    if not all(p.exists() for p in paths):
        print(f"{args.data}/pano360 not found: nothing to measure")
        return 0
    if args.diagnose:
        diagnose(paths[0], args.device)
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
