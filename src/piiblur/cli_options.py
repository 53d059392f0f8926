"""The detection options that ``pii-blur`` and ``pii-blur evaluate`` share, and the ``Settings`` they make."""

from __future__ import annotations

import argparse
import re
from enum import StrEnum

from piiblur.blur import MAX_STRENGTH, MIN_STRENGTH, checked_strength
from piiblur.classes import CLASS_TABLE, CLASSES
from piiblur.formats import DEFAULT_MAX_PIXELS
from piiblur.settings import DEFAULT_MAX_BYTES, Device, Precision, Projection, Settings, Views

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_count(text: str) -> int:
    """A size such as 2G, 500M or 1048576 (K, M, G, T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match or float(match[1]) * _UNITS[match[2]] < 1:
        raise argparse.ArgumentTypeError("a size in bytes, such as 2G, 500M or 1048576")
    return int(float(match[1]) * _UNITS[match[2]])


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CLASSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(CLASSES)} (comma-separated)")
    return names


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def _strength(text: str) -> float:
    try:
        return checked_strength(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _values(choices: type[StrEnum]) -> list[str]:
    return [choice.value for choice in choices]


def add_detection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument("--classes", type=_classes, default=CLASSES, metavar="LIST",
                       help="what to blur, comma-separated (default: face,plate)")
    for entry in CLASS_TABLE:
        group.add_argument(entry.flag, type=_fraction, default=entry.threshold, metavar="SCORE",
                           help=f"lowest {entry.name} score that is blurred (default: %(default)s; "
                           f"{entry.threshold_help})")
    group.add_argument("--strength", type=_strength, default=1.0,
                       help=f"blur strength, {MIN_STRENGTH:g} to {MAX_STRENGTH:g}; sigma is a quarter of the "
                       "region at 1.0 (default: %(default)s)")
    group.add_argument("--projection", choices=_values(Projection), default=Projection.AUTO.value,
                       help="auto: a 360 panorama (GPano, or 2:1 and 2000+ px wide) is searched on views of the "
                       "sphere and blurred across its seam; planar: every image is a flat photo")
    group.add_argument("--views", choices=sorted(_values(Views)), default=Views.STANDARD.value,
                       help="views of the sphere searched in a panorama (default: %(default)s; see README)")
    group.add_argument("--device", choices=_values(Device), default=Device.AUTO.value,
                       help="where the detectors run (default: auto, the GPU when onnxruntime has one)")
    group.add_argument("--precision", choices=_values(Precision), default=Precision.AUTO.value,
                       help="model weights: auto = 8-bit on the CPU (faster), float on a GPU")
    group.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                       help="refuse images with more pixels than this (default: %(default)s)")
    group.add_argument("--max-bytes", type=byte_count, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                       help="refuse files larger than this, unread, e.g. 500M or 4G (default: 2G); only regular "
                       "files are read: a FIFO, device or socket named like an image fails")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings the detection options of ``add_detection_options`` ask for."""
    return Settings(
        classes=args.classes,
        thresholds={entry.name: getattr(args, f"{entry.name}_threshold") for entry in CLASS_TABLE},
        strength=args.strength,
        max_pixels=args.max_pixels,
        max_bytes=args.max_bytes,
        device=args.device,
        precision=args.precision,
        projection=args.projection,
        views=args.views,
    )
