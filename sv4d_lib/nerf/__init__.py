"""4D optimisation: a dynamic NeRF fitted to multi-view videos, and its export to an animated mesh.

`fit_4d(videos, masks, cameras, config=FitConfig.preset("default"))` returns a `DynamicNeRF`;
`render.render_views(field, cameras, t, width, height)` gives (rgb, alpha); `export.export_4d` writes the GLBs.
Modules depend one way: hashgrid → occupancy/deformation → field → render → curriculum/losses → fit → export.
"""
from .field import DynamicNeRF, FieldConfig
from .fit import FitConfig, derive_masks, fit_4d

__all__ = ["DynamicNeRF", "FieldConfig", "FitConfig", "derive_masks", "fit_4d"]
