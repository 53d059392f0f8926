"""The names the benchmarks, tools and training scripts import from before panoramas became a projection;
the code lives in ``piiblur.projections`` (``camera``, ``sphere_geometry``, ``gpano``, ``view_sets``,
``sphere_detect``, ``sphere_blur``)."""

from __future__ import annotations

from piiblur.projections.camera import View, angles, directions, view_of
from piiblur.projections.gpano import MIN_FULL_WIDTH, equirect_for, gpano
from piiblur.projections.sphere_blur import blur, protected
from piiblur.projections.sphere_detect import confirm, deduplicate_on_sphere, detect_sphere, to_sphere
from piiblur.projections.sphere_geometry import Equirect, remap, render
from piiblur.projections.view_sets import PLATE_BAND, VIEW_SETS, Ring, band_ring, views_for

__all__ = ["MIN_FULL_WIDTH", "PLATE_BAND", "VIEW_SETS", "Equirect", "Ring", "View", "angles", "band_ring", "blur",
           "confirm", "deduplicate_on_sphere", "detect_sphere", "directions", "equirect_for", "gpano", "protected",
           "remap", "render", "to_sphere", "view_of", "views_for"]
