"""What every detector shares: the interface and the onnxruntime session."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, replace
from importlib import resources
from typing import ClassVar, Protocol

import numpy as np
import onnxruntime as ort

from piiblur.detections import Detections

# where a program imported onnxruntime before pii-blur, too late for ``piiblur/__init__.py`` to turn its
# telemetry off, ask it through its API to log no further events (what it wrote at import stays)
ort.disable_telemetry_events()

REGISTRY: dict[str, type] = {}

# On the CPU, every session of a process draws its activations from one shared onnxruntime arena that
# grows by what is asked (not to the next power of two): without an arena every run maps its
# activations afresh and faults every page in again; with one arena per session each net keeps its
# own peak. Shared: about 18% less CPU time and less memory than none (README, "Speed"). The arena
# keeps its peak until ``release_shared_arena`` (once an image is searched); PIIBLUR_CPU_ARENA=0 gives
# activations back after every run instead (more time).
CPU_MEM_ARENA = os.environ.get("PIIBLUR_CPU_ARENA", "1") != "0"
_shared_arena: bool | None = None  # registered in this process: None = not tried yet


def shared_cpu_arena() -> bool:
    """Register this process's one CPU arena (once); False where onnxruntime cannot."""
    global _shared_arena
    if _shared_arena is None:
        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))
            _shared_arena = True
        except (AttributeError, RuntimeError, TypeError, ValueError):  # an onnxruntime without it
            _shared_arena = False
    return _shared_arena


# A run given this option ends by giving the arena's free chunks back to the system.
_SHRINK = ort.RunOptions()
_SHRINK.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


def release_shared_arena(detectors: list[Detector]) -> None:
    """Give the shared CPU arena's memory back once an image is searched: it holds the largest view's
    activations (about 400 MB for an 8000x4000 panorama, 1.4 GB for 16K), which would otherwise stay
    a worker's while the image is blurred and written, the time of its peak memory. Growing it again
    for the next image costs a small share of one view's run. onnxruntime shrinks an arena only at the
    end of a run that asks for it: here, one of a tiny input."""
    if not _shared_arena:
        return
    for detector in detectors:
        session = getattr(detector, "session", None)
        if session is None or session.get_providers()[0] != "CPUExecutionProvider":
            continue
        tiny = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else 32)
                for i, d in enumerate(session.get_inputs()[0].shape)]
        with contextlib.suppress(Exception):  # only memory: a net that refuses the input keeps it
            session.run(None, {session.get_inputs()[0].name: np.zeros(tiny, np.float32)}, _SHRINK)
            return


def register(cls: type) -> type:
    """Add a detector class under its ``name``; a second detector of one name is refused, not swapped in."""
    name = cls.name  # type: ignore[attr-defined]
    if REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"two detectors are registered as {name!r}")
    REGISTRY[name] = cls
    return cls


class Detector(Protocol):
    name: ClassVar[str]  # registry key, e.g. "centerface"
    class_name: ClassVar[str]  # what it finds: "face" or "plate"
    tile: ClassVar[int]  # edge of the square tile it is run on, in pixels

    def detect(self, rgb: np.ndarray, threshold: float) -> Detections:
        """Find objects in an 8-bit RGB image (H, W, 3) of any size up to a few tiles."""
        ...

    def detect_many(self, images: list[np.ndarray], threshold: float) -> list[Detections]:
        """``detect`` on each of several images of one shape, in one run of the net where it can."""
        ...


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    threads: int = 0  # intra-op threads per session; 0 = onnxruntime's choice
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | int8 | fp32; auto = int8 on the CPU, fp32 on a GPU

    def providers(self) -> list[str]:
        present = ort.get_available_providers()
        if self.device == "cpu":
            return ["CPUExecutionProvider"]
        if self.device == "cuda":
            if "CUDAExecutionProvider" not in present:
                raise RuntimeError("--device cuda asked for, but onnxruntime has no CUDA provider here")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in present]

    def providers_with_options(self) -> list[str | tuple[str, dict[str, str]]]:
        """``providers()`` as a session takes them. On CUDA, cuDNN picks convolution algorithms by
        heuristic: tiles and views come in many sizes, and its default benchmarks each new shape."""
        return [(p, {"cudnn_conv_algo_search": "HEURISTIC"}) if p == "CUDAExecutionProvider" else p
                for p in self.providers()]


    def model_file(self, stem: str) -> str:
        """The shipped model for ``stem``: 8-bit weights on the CPU (about twice as fast), float on a GPU."""
        precision = self.precision
        if precision == "auto":
            precision = "fp32" if self.providers()[0] == "CUDAExecutionProvider" else "int8"
        return f"{stem}_int8.onnx" if precision == "int8" else f"{stem}.onnx"


def model_path(filename: str) -> str:
    return str(resources.files("piiblur") / "models" / filename)


def load_cuda_libraries() -> None:
    """Let onnxruntime-gpu find CUDA and cuDNN installed as nvidia-* wheels (``onnxruntime-gpu[cuda,cudnn]``);
    libraries on the system's search path need nothing. onnxruntime does this only when asked."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime 1.21 and newer
    if preload is not None:
        with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
            preload()


def make_session(stem: str, options: OnnxRuntimeOptions, path: str | None = None) -> ort.InferenceSession:
    """A session for the shipped model ``stem`` (at ``options.precision``), or for the ONNX file ``path``
    when given (used as it is, whatever the precision)."""
    if path is not None and not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path}")
    filename = path or model_path(options.model_file(stem))
    wants_cuda = options.providers()[0] == "CUDAExecutionProvider"
    if wants_cuda:
        load_cuda_libraries()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    threads = options.threads or int(os.environ.get("PIIBLUR_THREADS", "0"))
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle pool threads sleep instead of spinning: they would take the core from the worker's own
    # rendering and from other workers (measured with two threads: 40% less CPU time, less wall time)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.enable_cpu_mem_arena = False  # without the shared arena: give activations back after each run
    if CPU_MEM_ARENA and not wants_cuda and shared_cpu_arena():
        so.enable_cpu_mem_arena = True
        so.add_session_config_entry("session.use_env_allocators", "1")
    session = ort.InferenceSession(filename, so, providers=options.providers_with_options())
    if wants_cuda and session.get_providers()[0] != "CUDAExecutionProvider":
        # onnxruntime falls back to the CPU, quietly, when the CUDA or cuDNN libraries do not load
        if options.device == "auto":
            warnings.warn("onnxruntime's CUDA provider did not start: running on the CPU", stacklevel=2)
            return make_session(stem, replace(options, device="cpu"), path)
        raise RuntimeError("onnxruntime's CUDA provider did not start (CUDA or cuDNN libraries missing or of "
                           "another version than the onnxruntime-gpu build): install "
                           "'onnxruntime-gpu[cuda,cudnn]', or run with --device cpu")
    return session


def pad_to_multiple(rgb: np.ndarray, multiple: int, value: int = 0) -> np.ndarray:
    """Pad bottom and right so both sides are multiples of ``multiple`` (the net's stride)."""
    h, w = rgb.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), constant_values=value)
    return rgb


class OnnxDetector:
    """What the detectors that run one shipped ONNX model share: the session, loaded once, and the
    net's input blob (NCHW float32, padded to the stride). A subclass names ``model`` and decodes.
    ``model_file`` loads another ONNX file of the same inputs and outputs instead (a retrained net)."""

    model: ClassVar[str]  # file stem under models/, e.g. "centerface"
    stride: ClassVar[int] = 32

    def __init__(self, options: OnnxRuntimeOptions, model_file: str | None = None) -> None:
        self.session = make_session(self.model, options, model_file)
        self.input_name = self.session.get_inputs()[0].name
        # a net whose first convolution reads the picture's 2x2 space-to-depth (12 channels: colour c at
        # offset dy, dx of each block in channel c * 4 + dy * 2 + dx; tools/make_models.py)
        self.space_to_depth = self.session.get_inputs()[0].shape[1] == 12

    pad_value: ClassVar[int] = 0  # what the input is padded with to the stride
    scale: ClassVar[float] = 1.0  # the input is 8-bit RGB times this

    @property
    def on_gpu(self) -> bool:
        """True when the net runs on onnxruntime's CUDA provider."""
        return self.session.get_providers()[0] == "CUDAExecutionProvider"

    def detect(self, rgb: np.ndarray, threshold: float) -> Detections:
        return self.decode(self.run([rgb]), rgb.shape[1], rgb.shape[0], threshold)

    def detect_many(self, images: list[np.ndarray], threshold: float) -> list[Detections]:
        """``detect`` on images of one shape, as one batch through the net (its inputs take any batch)."""
        if not images:
            return []
        outputs = self.run(images)
        h, w = images[0].shape[:2]
        return [self.decode([o[i: i + 1] for o in outputs], w, h, threshold) for i in range(len(images))]

    def decode(self, outputs: list[np.ndarray], width: int, height: int, threshold: float) -> Detections:
        """The detections in one image's outputs (batch of one) of the net, for a ``width`` x ``height`` input."""
        raise NotImplementedError

    def run(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The net's outputs for images of one shape, in one batch (NCHW float32, padded to the stride)."""
        h, w = images[0].shape[:2]
        hp, wp = h + (-h % self.stride), w + (-w % self.stride)
        shape = (len(images), 12, hp // 2, wp // 2) if self.space_to_depth else (len(images), 3, hp, wp)
        blob = np.empty(shape, np.float32)
        for slot, rgb in zip(blob, images, strict=True):
            if rgb.shape[:2] != (h, w):
                raise ValueError("a batch's images must have one shape")
            # one float copy, scaled in place: the same values as a padded, transposed, converted copy
            padded = pad_to_multiple(rgb, self.stride, self.pad_value)
            if self.space_to_depth:
                slot.reshape(3, 2, 2, hp // 2, wp // 2)[...] = padded.reshape(
                    hp // 2, 2, wp // 2, 2, 3).transpose(4, 1, 3, 0, 2)
            else:
                slot[...] = padded.transpose(2, 0, 1)
        if self.scale != 1.0:
            blob *= self.scale
        return self.session.run(None, {self.input_name: blob})

