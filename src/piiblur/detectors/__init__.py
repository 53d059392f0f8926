"""Detectors: an image in, ``Detections`` out.

Each module in this package holds one detector and registers it with
``@register`` under its name; a new detector is one new file. Which detector
finds a class is the class's entry in ``piiblur.classes``. ``load_detectors``
builds the ones the user asked for, each with its own onnxruntime session.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from piiblur.classes import CLASSES, object_class
from piiblur.detectors.base import REGISTRY, Detector, OnnxRuntimeOptions, register

__all__ = ["REGISTRY", "Detector", "OnnxRuntimeOptions", "available", "load_detectors", "register"]


def available() -> dict[str, type]:
    """Every registered detector class by name (importing each module of this package once)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(REGISTRY)


def load_detectors(classes: list[str], options: OnnxRuntimeOptions,
                   model_files: Mapping[str, str] | None = None) -> list[Detector]:
    """One detector for each requested class (face, plate), in that order; ``model_files`` maps a
    class to an ONNX file to load instead of the shipped model (same inputs and outputs)."""
    model_files = model_files or {}
    registered = available()
    unknown = set(model_files) - set(CLASSES)
    if unknown:
        raise ValueError(f"model file given for an unknown class: {', '.join(sorted(unknown))}")
    detectors: list[Detector] = []
    for name in classes:
        chosen = registered.get(object_class(name).detector)
        if chosen is None or chosen.class_name != name:
            raise ValueError(f"no detector for class {name!r}")
        detectors.append(chosen(options, model_files.get(name)))
    return detectors
