"""Pinhole cameras at the centre of the sphere: directions, angles and views.

Angles: yaw (longitude) is 0 at the panorama's centre column and grows to the
right; pitch (latitude) is +90 at the top. Directions are unit vectors (x
right, y up, z forward at yaw 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def directions(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    yaw, pitch = np.broadcast_arrays(np.radians(yaw), np.radians(pitch))
    return np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], axis=-1)


def angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    return np.degrees(np.arctan2(x, z)), np.degrees(np.arctan2(y, np.hypot(x, z)))


@dataclass(frozen=True)
class View:
    """A pinhole camera at the sphere's centre."""

    yaw: float
    pitch: float
    width: int
    height: int
    focal: float
    roll: float = 0.0

    @property
    def axes(self) -> np.ndarray:
        """3x3 matrix whose columns are the view's right, up and forward directions."""
        fwd = directions(np.array(self.yaw), np.array(self.pitch))
        yaw = math.radians(self.yaw)
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        up = np.cross(fwd, right)
        c, s = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        right, up = c * right + s * up, -s * right + c * up
        return np.stack([right, up, fwd], axis=1)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Directions through view pixels (u right, v down)."""
        a = (np.asarray(u, np.float64) - self.width / 2) / self.focal
        b = -(np.asarray(v, np.float64) - self.height / 2) / self.focal
        cam = np.stack([a, b, np.ones_like(a)], axis=-1)
        world = cam @ self.axes.T
        return world / np.linalg.norm(world, axis=-1, keepdims=True)

    def grid_angles(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Yaw and pitch of the rays through every pixel of columns ``u`` by rows ``v``: the angles of
        ``rays`` on their mesh grid, without building it (before it is normalised a ray is affine in u and
        v, and the angles need no normalising); a full-resolution view's in a fraction of the time."""
        a = (np.asarray(u, np.float64) - self.width / 2) / self.focal
        b = -(np.asarray(v, np.float64) - self.height / 2) / self.focal
        x, y, z = (a[None, :] * row[0] + b[:, None] * row[1] + row[2] for row in self.axes)
        return np.degrees(np.arctan2(x, z)), np.degrees(np.arctan2(y, np.hypot(x, z)))

    def project(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """View pixels (u, v) of directions, and whether each is in front of the camera."""
        cam = vectors @ self.axes
        front = cam[..., 2] > 1e-6
        z = np.where(front, cam[..., 2], 1.0)
        return self.width / 2 + self.focal * cam[..., 0] / z, self.height / 2 - self.focal * cam[..., 1] / z, front


def view_of(yaw: float, pitch: float, fov: float, focal: float, roll: float = 0.0, fov_v: float = 0.0) -> View:
    width = max(32, round(2 * focal * math.tan(math.radians(fov) / 2)))
    height = max(32, round(2 * focal * math.tan(math.radians(fov_v or fov) / 2)))
    return View(yaw, pitch, width, height, focal, roll)
