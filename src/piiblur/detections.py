"""The one value type every stage shares: a set of detected boxes.

``Detections`` holds N boxes as parallel arrays (``xyxy``, ``scores``,
``class_ids``), in pixels of whatever image produced them. Detections on a
panorama also carry each object's outline in panorama pixels (a box seen in a
view of the sphere becomes a curved shape) and its place on the sphere. Detectors return
it, views move it between coordinate frames, the merger de-duplicates it, the
blur draws it and the report prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from piiblur.classes import CLASSES, object_class

__all__ = ["CLASSES", "Detections", "box_overlap", "class_id"]


def class_id(name: str) -> int:
    """A detection's ``class_id``: the index of its class in ``CLASSES``."""
    return CLASSES.index(object_class(name).name)


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray  # (N, 4) float32: x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32 in [0, 1]
    class_ids: np.ndarray  # (N,) int32, indexes CLASSES
    # panoramas only: (N, 4) yaw, pitch, angular width, angular height in degrees
    places: np.ndarray | None = None
    # panoramas only: N closed polygons (K, 2) in panorama pixels; x may run past the seam
    outlines: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int32).reshape(-1))
        if not len(self.xyxy) == len(self.scores) == len(self.class_ids):
            raise ValueError("xyxy, scores and class_ids must have the same length")
        if self.places is not None:
            object.__setattr__(self, "places", np.asarray(self.places, dtype=np.float32).reshape(-1, 4))
            if self.outlines is None or not len(self.places) == len(self.outlines) == len(self.scores):
                raise ValueError("places and outlines go together, one per detection")

    # construction -----------------------------------------------------------
    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    @classmethod
    def of_class(cls, xyxy: np.ndarray, scores: np.ndarray, name: str) -> Detections:
        scores = np.asarray(scores).reshape(-1)
        return cls(xyxy, scores, np.full(len(scores), class_id(name)))

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        on_sphere = all(p.places is not None for p in parts)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
            np.concatenate([p.places for p in parts]) if on_sphere else None,  # type: ignore[misc]
            tuple(o for p in parts for o in p.outlines) if on_sphere else None,  # type: ignore[union-attr]
        )

    # access -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice | Sequence[int]) -> Detections:
        if self.places is None or self.outlines is None:
            return Detections(self.xyxy[index], self.scores[index], self.class_ids[index])
        picked = np.arange(len(self))[index]
        return Detections(self.xyxy[picked], self.scores[picked], self.class_ids[picked], self.places[picked],
                          tuple(self.outlines[i] for i in picked))

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def class_names(self) -> list[str]:
        return [CLASSES[i] for i in self.class_ids]

    def of(self, name: str) -> Detections:
        return self[self.class_ids == class_id(name)]

    def count(self, name: str) -> int:
        return int(np.sum(self.class_ids == class_id(name)))

    # geometry ---------------------------------------------------------------
    def scaled(self, factor: float) -> Detections:
        return Detections(self.xyxy * factor, self.scores, self.class_ids)

    def shifted(self, dx: float, dy: float) -> Detections:
        return Detections(self.xyxy + np.array([dx, dy, dx, dy], np.float32), self.scores, self.class_ids)

    def with_boxes(self, xyxy: np.ndarray) -> Detections:
        return Detections(xyxy, self.scores, self.class_ids, self.places, self.outlines)

    def clipped(self, width: int, height: int) -> Detections:
        xyxy = self.xyxy.copy()
        xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Detections(xyxy[keep], self.scores[keep], self.class_ids[keep])

    def touching(self, width: float, height: float, sides: tuple[bool, bool, bool, bool] = (True,) * 4
                 ) -> np.ndarray:
        """Which boxes touch (within a pixel) the ``sides`` (left, top, right, bottom) of a ``width`` x
        ``height`` frame they were found in: perhaps only part of the object, cut by the frame."""
        x1, y1, x2, y2 = self.xyxy.T
        left, top, right, bottom = sides
        return (((x1 <= 1) & left) | ((y1 <= 1) & top)
                | ((x2 >= width - 1) & right) | ((y2 >= height - 1) & bottom))

    def above(self, thresholds: dict[str, float]) -> Detections:
        """Keep detections whose score reaches their class's threshold."""
        limits = np.array([thresholds.get(name, 1.1) for name in CLASSES], np.float32)
        return self[self.scores >= limits[self.class_ids]]

    def deduplicated(self, iou: float = 0.45, containment: float = 0.8, cut: np.ndarray | None = None) -> Detections:
        """Per-class non-maximum suppression.

        A box is dropped when a better box of its class overlaps it by ``iou`` or more, or covers
        ``containment`` of its own area (a partial detection cut by a tile edge inside the whole one).
        Better means whole first, then higher scoring: a box ``cut`` by the edge of the tile it was
        found in may be only part of the object, and may outscore the whole object found at another
        level; kept, it would leave the rest unblurred.
        """
        cut = np.zeros(len(self), bool) if cut is None else cut
        keep_all: list[np.ndarray] = []
        for cid in np.unique(self.class_ids):
            idx = np.flatnonzero(self.class_ids == cid)
            keep_all.append(idx[_nms(self.xyxy[idx], self.scores[idx], iou, containment, cut[idx])])
        if not keep_all:
            return self
        keep = np.sort(np.concatenate(keep_all))
        return self[keep]

    # output -----------------------------------------------------------------
    def to_records(self, ndigits: int = 1) -> list[dict[str, object]]:
        records: list[dict[str, object]] = [
            {
                "class": CLASSES[c],
                "score": round(float(s), 3),
                "box": [round(float(v), ndigits) for v in box],
            }
            for box, s, c in zip(self.xyxy, self.scores, self.class_ids, strict=True)
        ]
        if self.places is not None:
            for record, (yaw, pitch, width, height) in zip(records, self.places, strict=True):
                record["sphere"] = {"yaw": round(float(yaw), 2), "pitch": round(float(pitch), 2),
                                    "width_deg": round(float(width), 2), "height_deg": round(float(height), 2)}
        return records


def _nms(xyxy: np.ndarray, scores: np.ndarray, iou: float, containment: float,
         cut: np.ndarray | None = None) -> np.ndarray:
    order = np.argsort(-scores, kind="stable") if cut is None else np.lexsort((-scores, cut))
    areas = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        ix1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        iy1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        ix2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        iy2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
        union = areas[i] + areas[rest] - inter
        overlap = inter / np.maximum(union, 1e-6)
        covered = inter / np.maximum(areas[rest], 1e-6)
        order = rest[(overlap < iou) & (covered < containment)]
    return np.array(keep, dtype=np.int64)


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
