"""How each view set covers the sphere, class by class: the pixels each net is given and the margin left.

    python benchmarks/view_coverage.py [--width 8000] [--sets standard,fast] [--roll 30,45]

Geometry only, no images and no nets: for every direction on a one-degree grid, the views of the set
that search a class (at full density; the coarse views are left out, they catch what is too big for
the margin) are asked how far the direction lies inside the rows of them searched for the class
(``Ring.spans``). The margin is that distance to the nearest edge of those rows in the best view, in
degrees: an object up to twice the margin across is whole in at least one view. A view only counts
where an upright object there stands within ``--roll`` degrees of
the view's vertical (the nets are not rotation-invariant: a face near a pole is turned by its yaw in
a view that looks straight up). The table gives, per 10-degree pitch band, the smallest margin in
the band (the worst direction); "-" where no view serves the band within that roll. Megapixels per
class are what one panorama of ``--width`` asks of that class's net.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from piiblur.projections.camera import View, directions
from piiblur.projections.sphere_geometry import Equirect
from piiblur.projections.view_sets import VIEW_SETS, views_for

BANDS = [(lo, lo + 10) for lo in range(-90, 90, 10)]


Searched = tuple[View, int, int]  # a view and the rows of it (top, bottom) searched for the class


def class_views(geo: Equirect, view_set: str, class_name: str) -> list[Searched]:
    """The views of the set that search ``class_name`` whole or in a span of rows (``views_for``, as the
    detection loop gets them); the views of seeded rings, searched only around what these find, are left out."""
    return [(one.view, *one.rows(class_name)) for one in views_for(geo, view_set, seeded=False)
            if class_name in one.classes]


def best_margins(views: list[Searched], max_roll: float) -> tuple[np.ndarray, np.ndarray]:
    """(pitch grid, best margin in degrees per direction; -inf where no view serves it)."""
    yaw, pitch = np.meshgrid(np.arange(-180.0, 180.0, 1.0), np.arange(-89.5, 90.0, 1.0))
    here = directions(yaw, pitch)
    above = directions(yaw, np.minimum(pitch + 0.25, 90.0))  # a short upright segment at each direction
    best = np.full(yaw.shape, -np.inf)
    for view, top, bottom in views:
        u, v, front = view.project(here)
        u_up, v_up, _ = view.project(above)
        inside = front & (u >= 0) & (u < view.width) & (v >= top) & (v < bottom)
        edge_px = np.minimum.reduce([u, view.width - u, v - top, bottom - v])
        cos_off = np.clip((here @ view.axes)[..., 2], 1e-3, 1.0)  # cosine of the angle off the view's axis
        px_per_degree = view.focal * math.pi / 180 / cos_off ** 1.5  # radial and tangential stretch, averaged
        roll = np.degrees(np.arctan2(u_up - u, v - v_up))
        usable = inside & (np.abs(roll) <= max_roll)
        best = np.where(usable, np.maximum(best, edge_px / px_per_degree), best)
    return pitch, best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8000, help="panorama width (megapixels per net)")
    parser.add_argument("--sets", default=",".join(VIEW_SETS))
    parser.add_argument("--roll", default="30,45", help="largest turn of an upright object in a usable view")
    args = parser.parse_args()
    geo = Equirect(args.width, args.width // 2, args.width, args.width // 2)
    header = "| set | class | roll | MP | " + " | ".join(f"{lo:+d}" for lo, _ in BANDS) + " |"
    print(f"Smallest margin (degrees) per pitch band, panorama {geo.width}x{geo.height}; MP: all views of the "
          "class searched whole, coarse ones included (seeded rings, searched only around seeds, left out: "
          "`thorough` has them whole)\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.sets.split(","):
        for class_name in ("face", "plate"):
            searched = class_views(geo, name, class_name)
            megapixels = sum(view.width * (bottom - top) for view, top, bottom in searched) / 1e6
            views = [one for one in searched if one[0].focal >= geo.focal]  # the coarse views left out
            for max_roll in (float(r) for r in args.roll.split(",")):
                pitch, best = best_margins(views, max_roll)
                cells = []
                for lo, hi in BANDS:
                    worst = float(best[(pitch >= lo) & (pitch < hi)].min())
                    cells.append("-" if worst == -np.inf else f"{worst:.1f}")
                print(f"| {name} | {class_name} | {max_roll:g} | {megapixels:.1f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
