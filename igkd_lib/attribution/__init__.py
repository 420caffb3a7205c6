"""Stage 3 of the method, attribution: the teacher's Integrated Gradients maps of every training image.

- :mod:`~igkd_lib.attribution.ig`: batched IG (equal to captum's), the quadrature rules, map reduction;
- :mod:`~igkd_lib.attribution.maps`: the maps cache (row i is image i, keyed, verified, resumable);
- :mod:`~igkd_lib.attribution.sources`: the other map sources of the ablations (Sobel, SmoothGrad, ...).

It reads the trained teacher (:mod:`igkd_lib.training`); the overlay that uses the maps is
:func:`igkd_lib.data.augment.overlay`, and the student's trainer reads them from here.
"""
from igkd_lib.attribution.ig import BASELINES, METHODS, completeness_table, integrated_gradients, quadrature, reduce_map
from igkd_lib.attribution.maps import get_maps

MODULES = ("ig", "maps", "sources")
__all__ = ["MODULES", "BASELINES", "METHODS", "completeness_table", "integrated_gradients",
           "quadrature", "reduce_map", "get_maps"]
