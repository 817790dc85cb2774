"""4D optimisation: a dynamic NeRF fitted to multi-view videos, and its export to an animated mesh.

`fit_4d(videos, masks, elevations_deg, azimuths_deg, config=FitConfig(...))` returns a `DynamicNeRF` whose
`render(elevation_deg, azimuth_deg, t, width, height)` gives (rgb, alpha); `export.export_4d` writes the GLBs.
"""
from .field import DynamicNeRF, FieldConfig
from .fit import FitConfig, derive_masks, fit_4d

__all__ = ["DynamicNeRF", "FieldConfig", "FitConfig", "derive_masks", "fit_4d"]
