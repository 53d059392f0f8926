"""What pii-blur hides: one entry per class of object, everything that differs between classes.

A new class is one entry here plus a detector registered under the entry's ``detector`` name.
A detection's ``class_id`` indexes ``CLASSES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Shape(StrEnum):
    """The shape a detection is hidden under (``piiblur.blur``)."""

    ELLIPSE = "ellipse"  # grown by blur.FACE_GROWTH
    ROUNDED_RECTANGLE = "rounded rectangle"  # grown by blur.PLATE_MARGIN of its height


@dataclass(frozen=True)
class ObjectClass:
    name: str
    threshold: float  # the lowest score blurred, unless the user says otherwise
    shape: Shape
    detector: str  # the registered detector (``piiblur.detectors``) that finds it
    threshold_help: str  # the end of the help of its ``--NAME-threshold`` option

    @property
    def flag(self) -> str:
        return f"--{self.name}-threshold"


CLASS_TABLE: tuple[ObjectClass, ...] = (
    ObjectClass("face", 0.3, Shape.ELLIPSE, "centerface",
                "in panoramas, down to half of it when a closer look confirms the find"),
    ObjectClass("plate", 0.25, Shape.ROUNDED_RECTANGLE, "yolov8n-plate", "in panoramas as for faces"),
)
CLASSES: tuple[str, ...] = tuple(c.name for c in CLASS_TABLE)
DEFAULT_THRESHOLDS: dict[str, float] = {c.name: c.threshold for c in CLASS_TABLE}


def object_class(name: str) -> ObjectClass:
    for entry in CLASS_TABLE:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown class {name!r}; known: {', '.join(CLASSES)}")
