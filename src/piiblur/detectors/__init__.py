"""Detectors: an image in, ``Detections`` out.

Each module in this package holds one detector and registers it with
``@register``; a new detector is one new file. ``load_detectors`` builds the
ones the user asked for, each with its own onnxruntime session.
"""

from __future__ import annotations

import importlib
import pkgutil

from piiblur.detectors.base import REGISTRY, Detector, OnnxRuntimeOptions, register

__all__ = ["REGISTRY", "Detector", "OnnxRuntimeOptions", "available", "load_detectors", "register"]


def available() -> dict[str, type]:
    """Every registered detector class by name (importing each module of this package once)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(REGISTRY)


def load_detectors(classes: list[str], options: OnnxRuntimeOptions) -> list[Detector]:
    """One detector for each requested class (face, plate), in that order."""
    detectors: list[Detector] = []
    by_class = {cls.class_name: cls for cls in available().values()}
    for name in classes:
        if name not in by_class:
            raise ValueError(f"no detector for class {name!r}")
        detectors.append(by_class[name](options))
    return detectors
