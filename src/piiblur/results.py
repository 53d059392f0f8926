"""What a run finds out: one ``FileResult`` per image, gathered into a ``BatchResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FileResult:
    source: str
    output: str | None
    status: str  # blurred | copied | skipped | failed (the values of settings.Status)
    reason: str = ""
    width: int = 0
    height: int = 0
    orientation: int = 1
    projection: str = "planar"
    detections: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    written: bool = False

    def count(self, name: str) -> int:
        return sum(1 for d in self.detections if d["class"] == name)


@dataclass
class BatchResult:
    files: list[FileResult] = field(default_factory=list)
    not_images: int = 0
    hidden: int = 0  # hidden names (leading dot) passed over
    seconds: float = 0.0
    stopped_by: int | None = None  # the signal that stopped the run before the end (SIGINT, SIGTERM)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]
