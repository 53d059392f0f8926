"""Draw docs/panorama_views.png: where the views of the sphere fall on an equirectangular panorama.

    python tools/make_readme_figures.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from piiblur import sphere
from piiblur.detections import Detections

OUT = Path(__file__).resolve().parent.parent / "docs" / "panorama_views.png"
COLOURS = [(230, 80, 60), (60, 160, 230), (60, 190, 90), (200, 120, 220), (240, 180, 40), (120, 120, 120)]


def main() -> None:
    width, height = 1600, 800
    geo = sphere.Equirect(width, height, width, height)
    canvas = np.full((height, width, 3), 250, np.uint8)
    for lon in range(-180, 181, 30):  # graticule
        x = int((lon / 360 + 0.5) * width)
        cv2.line(canvas, (x, 0), (x, height), (215, 215, 215), 1)
    for lat in range(-90, 91, 15):
        y = int((0.5 - lat / 180) * height)
        cv2.line(canvas, (0, y), (width, y), (215, 215, 215), 1)
    rings = sphere.VIEW_SETS["standard"]
    for index, ring in enumerate(rings):
        if ring.density < 1:
            continue  # the coarse views would hide the rest
        colour = COLOURS[index % len(COLOURS)]
        for i in range(ring.count):
            yaw = (ring.yaw_offset + i * 360.0 / ring.count + 180) % 360 - 180
            view = sphere.view_of(yaw, ring.pitch, ring.fov, geo.focal, fov_v=ring.fov_v)
            t = np.linspace(0, 1, 60)
            u = np.concatenate([t * view.width, np.full_like(t, view.width), (1 - t) * view.width, np.zeros_like(t)])
            v = np.concatenate([np.zeros_like(t), t * view.height, np.full_like(t, view.height), (1 - t) * view.height])
            x, y = geo.to_pixels(*sphere.angles(view.rays(u, v)))
            points = np.stack([x, y], axis=1)
            for a, b in itertools.pairwise(points):
                if abs(a[0] - b[0]) < width / 2:  # do not draw the jump across the seam
                    cv2.line(canvas, tuple(int(c) for c in a), tuple(int(c) for c in b), colour, 2, cv2.LINE_AA)
    # a face seen straight above the camera and one split by the seam, as their masks fall on the panorama
    demo = Detections(np.zeros((2, 4)), [1, 1], [0, 0], places=np.array([[40, 72, 8, 10], [180, -5, 6, 8]]),
                      outlines=(np.zeros((4, 2)), np.zeros((4, 2))))
    demo = Detections(demo.xyxy, demo.scores, demo.class_ids, demo.places, tuple(
        _outline(geo, *p) for p in demo.places))
    mask = sphere.protected(demo, geo)
    canvas[mask] = (0.5 * canvas[mask] + 0.5 * np.array([40, 40, 40])).astype(np.uint8)
    cv2.putText(canvas, "face above the camera", (760, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1,
                cv2.LINE_AA)
    cv2.putText(canvas, "face split by the seam", (40, 460), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1,
                cv2.LINE_AA)
    legend = [("horizon ring: 8 views, 55 x 64 deg", 0), ("ring 45 deg up: 8 views (faces)", 1),
              ("ring 45 deg down: 8 views", 2), ("ring 75 deg up: 5 views (faces)", 3),
              ("ring 75 deg down: 5 views", 4)]
    cv2.rectangle(canvas, (1180, 330), (1590, 470), (255, 255, 255), -1)
    for row, (text, index) in enumerate(legend):
        y = 355 + 25 * row
        cv2.line(canvas, (1190, y - 5), (1220, y - 5), COLOURS[index], 3)
        cv2.putText(canvas, text, (1230, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    OUT.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(OUT), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    print(OUT)


def _outline(geo: sphere.Equirect, yaw: float, pitch: float, ang_w: float, ang_h: float) -> np.ndarray:
    view = sphere.view_of(yaw, pitch, 30, geo.focal)
    half_w = geo.focal * np.tan(np.radians(ang_w / 2))
    half_h = geo.focal * np.tan(np.radians(ang_h / 2))
    cu, cv = view.width / 2, view.height / 2
    box = Detections([[cu - half_w, cv - half_h, cu + half_w, cv + half_h]], [1], [0])
    return sphere.to_sphere(box, view, geo).outlines[0]  # type: ignore[index]


if __name__ == "__main__":
    main()
