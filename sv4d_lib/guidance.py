"""Classifier-free guidance grids: one CFG scale per latent (frame t, novel view v).

SV4D 2.0 guides every latent of a window with its own scale (spec §4): the official 4-view script ramps the
scale linearly over the flattened (t, v) order, the 8-view script raises it with the frame index and with the
distance of the view from the input view. Artists get the same idea as a tunable ramp plus per-cell overrides.

Grid spec (the JSON string the ComfyUI node and the web editor exchange)::

    {
      "preset": "official_4v" | "official_8v" | "ramp",      # required
      "params": {...},                                      # optional, per preset (below); missing keys = defaults
      "overrides": {"t,v": scale, ...},                     # optional, replaces single cells (0-based t, v)
      "shape": [T, V]                                       # optional, the frames × views the grid was drawn for
    }

Presets and their params (scales in [0, 30]):

* ``official_4v`` {"min": 1.0, "max": 2.0}: ``linspace(min, max, T·V)`` over the flattened (t, v) order, exactly
  the script's `LinearPredictionGuider` (its `min_cfg` option is ignored by the script, so min stays 1.0).
* ``official_8v`` {"min": 1.5, "max": 2.5}: ``min + (max − min)·(0.5·t/(T−1) + 0.5·tri(v/(V−1)))`` computed in the
  script's float32 order; tri(u) = 2·|u − floor(u + 0.5)|. The top scale is 2.4286, not 2.5, as in the script.
* ``ramp`` {"min": 1.5, "time_max": 2.0, "view_max": 2.0, "time_easing": "linear", "view_easing": "linear"}:
  ``min + (time_max − min)·ease_t(τ) + (view_max − min)·ease_v(δ)``, τ = t/(T−1) the position in time and
  δ ∈ [0, 1] the view distance from the input view: the angle between the view's azimuth and the input view's,
  divided by 180°, when the cameras are given, else tri(v/(V−1)) as the 8-view script assumes. So ``min`` is the
  scale at the first frame next to the input view, ``time_max`` at the last frame there, ``view_max`` at the first
  frame opposite the input view. Easings: "linear", "ease_in" (u²), "ease_out" (1 − (1 − u)²), "ease_in_out"
  (smoothstep 3u² − 2u³).

``overrides`` keys are "t,v" strings; ``shape``, when present, must equal the (T, V) the model samples, so the grid
an editor shows is the grid the sampler uses. Grids are computed on the CPU in float32 (bit-exact golden values);
callers move them to the sampling device once.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

import torch

from .cameras import OrbitCameras

MIN_SCALE, MAX_SCALE = 0.0, 30.0

EASINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda u: u,
    "ease_in": lambda u: u * u,
    "ease_out": lambda u: 1 - (1 - u) * (1 - u),
    "ease_in_out": lambda u: u * u * (3 - 2 * u),
}

# Default params per preset; every key a preset accepts appears here.
PRESETS: dict[str, dict[str, Any]] = {
    "official_4v": {"min": 1.0, "max": 2.0},
    "official_8v": {"min": 1.5, "max": 2.5},
    "ramp": {"min": 1.5, "time_max": 2.0, "view_max": 2.0, "time_easing": "linear", "view_easing": "linear"},
}

DEFAULT_GRID_SPEC = json.dumps({"preset": "official_4v", "params": PRESETS["official_4v"]})

_SPEC_KEYS = ("preset", "params", "overrides", "shape")
_CELL_KEY = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*$")


def cfg_grid(
    preset: str, num_frames: int, num_novel_views: int, *, cameras: OrbitCameras | None = None, **params: Any
) -> torch.Tensor:
    """CFG scale per (frame, view) as a `(T, V)` float32 CPU tensor; presets reproduce the scripts exactly.

    `cameras` (input view + the V novel views) only shape the "ramp" preset.
    """
    _check_size(num_frames, num_novel_views)
    merged = _check_params(preset, params)
    if preset == "official_4v":
        # LinearPredictionGuider: torch.linspace(min, max, num_frames = T·V) in batch order.
        scales = torch.linspace(merged["min"], merged["max"], num_frames * num_novel_views)
        return scales.view(num_frames, num_novel_views)
    if preset == "official_8v":
        # SpatiotemporalPredictionGuider, in the script's float32 operation order (keeps its exact values).
        unit = torch.zeros(num_frames * num_novel_views).view(num_frames, num_novel_views)
        unit += torch.linspace(0, 1, num_frames)[:, None] * 0.5
        unit += _tri(torch.linspace(0, 1, num_novel_views))[None, :] * 0.5
        return (unit.flatten() * (merged["max"] - merged["min"]) + merged["min"]).view(num_frames, num_novel_views)
    low = merged["min"]
    along_time = _ease(low, merged["time_max"], merged["time_easing"], torch.linspace(0, 1, num_frames))
    view_rise = _ease(0.0, merged["view_max"] - low, merged["view_easing"], view_distance(num_novel_views, cameras))
    grid = along_time[:, None] + view_rise[None, :]
    low, high = grid.min().item(), grid.max().item()
    if low < MIN_SCALE or high > MAX_SCALE:
        # the time and view rises add up, so both ends can be in range while the far corner is not
        raise ValueError(
            f"the ramp reaches scales {low:g}..{high:g} at its corners, outside [{MIN_SCALE:g}, {MAX_SCALE:g}]; "
            "bring time_max and view_max closer to min"
        )
    return grid


def ramp_profiles(params: dict[str, Any], num_frames: int, samples: int = 33) -> tuple[torch.Tensor, torch.Tensor]:
    """The ramp's two curves, for editors to draw: per frame at distance 0, and over distance 0..1 at frame 0."""
    merged = _check_params("ramp", params)
    low = merged["min"]
    along_time = _ease(low, merged["time_max"], merged["time_easing"], torch.linspace(0, 1, num_frames))
    along_view = _ease(low, merged["view_max"], merged["view_easing"], torch.linspace(0, 1, samples))
    return along_time, along_view


def view_distance(num_novel_views: int, cameras: OrbitCameras | None = None) -> torch.Tensor:
    """Distance of each novel view from the input view in [0, 1] (1 = opposite side), float32 `(V,)`.

    With cameras it is the smaller angle between the view's azimuth and the input view's, over 180°; without, it
    follows the 8-view script's assumption that views are spread evenly from one side of the input view around
    to the other: tri(v/(V−1)).
    """
    if cameras is None:
        return _tri(torch.linspace(0, 1, num_novel_views))
    cameras.check_count(num_novel_views + 1, "the CFG grid (its novel views plus the input view)")
    azimuths_deg = cameras.azimuths_deg
    relative = [(a - azimuths_deg[0]) % 360.0 for a in azimuths_deg[1:]]
    return torch.tensor([min(r, 360.0 - r) / 180.0 for r in relative], dtype=torch.float32)


def parse_grid_spec(text: str) -> dict[str, Any]:
    """Parse and check a grid spec JSON string (format in the module docstring) before any compute.

    Returns {"preset": str, "params": dict (defaults filled in), "overrides": {(t, v): float},
    "shape": (T, V) | None}; raises ValueError naming the problem and the fix.
    """
    try:
        raw = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"the CFG grid is not valid JSON ({error}); expected e.g. {DEFAULT_GRID_SPEC}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"the CFG grid must be a JSON object like {DEFAULT_GRID_SPEC}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_SPEC_KEYS))
    if unknown:
        raise ValueError(f"unknown CFG grid keys {unknown}; allowed keys are {list(_SPEC_KEYS)}")
    preset = raw.get("preset")
    if preset not in PRESETS:
        raise ValueError(f"unknown CFG grid preset {preset!r}; use one of {sorted(PRESETS)}")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"CFG grid 'params' must be a JSON object, got {type(params).__name__}")
    shape = raw.get("shape")
    if shape is not None:
        if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(n) and n >= 1 for n in shape)):
            raise ValueError(f"CFG grid 'shape' must be [num_frames, num_views] with positive integers, got {shape!r}")
        shape = (int(shape[0]), int(shape[1]))
    return {
        "preset": preset,
        "params": _check_params(preset, params),
        "overrides": _parse_overrides(raw.get("overrides", {})),
        "shape": shape,
    }


def grid_from_spec(
    spec: dict[str, Any], num_frames: int, num_novel_views: int, cameras: OrbitCameras | None = None
) -> torch.Tensor:
    """The `(T, V)` grid a parsed spec describes for this model; checks shape, overrides and the value range."""
    _check_size(num_frames, num_novel_views)
    shape = spec.get("shape")
    if shape is not None and tuple(shape) != (num_frames, num_novel_views):
        raise ValueError(
            f"the CFG grid was drawn for {shape[0]} frames × {shape[1]} views but the model samples {num_frames} "
            f"frames × {num_novel_views} views; pick a {num_frames}×{num_novel_views} grid in the editor or delete "
            "'shape'"
        )
    official_views = {"official_4v": 4, "official_8v": 8}.get(spec["preset"])
    if official_views is not None and official_views != num_novel_views:
        wanted = {4: "official_4v", 8: "official_8v"}.get(num_novel_views, "ramp")
        raise ValueError(
            f"the CFG grid preset {spec['preset']!r} is the official grid of the {official_views}-view model, but this "
            f"model samples {num_novel_views} views; choose the preset {wanted!r} in the grid editor"
        )
    grid = cfg_grid(spec["preset"], num_frames, num_novel_views, cameras=cameras, **spec["params"])
    for (t, v), value in spec.get("overrides", {}).items():
        if t >= num_frames or v >= num_novel_views:
            raise ValueError(
                f"CFG grid override '{t},{v}' lies outside the {num_frames} frames × {num_novel_views} views grid; "
                f"use t < {num_frames} and v < {num_novel_views} or delete it"
            )
        grid[t, v] = value
    return grid


def apply_cfg_grid(cond: torch.Tensor, uncond: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Guided denoised latents `uncond + (cond − uncond)·s`, one scale per latent in (b, t, v) order.

    `scales` is the `(T, V)` grid (put it on the sampling device once); it repeats over extra batches b.
    """
    per_latent = scales.reshape(-1)
    if cond.shape[0] % per_latent.numel():
        raise ValueError(
            f"{cond.shape[0]} latents do not split into batches of the CFG grid's {per_latent.numel()} (T·V) cells; "
            "use a latent batch of T·V latents per video"
        )
    scale = per_latent.to(device=cond.device, dtype=cond.dtype).repeat(cond.shape[0] // per_latent.numel())
    return uncond + (cond - uncond) * scale.view(-1, *([1] * (cond.ndim - 1)))


def _ease(start: float, end: float, easing: str, u: torch.Tensor) -> torch.Tensor:
    return start + (end - start) * EASINGS[easing](u)


def _tri(values: torch.Tensor) -> torch.Tensor:
    """The scripts' triangle wave with period 1: 0 at u = 0 and 1, 1 at u = 0.5."""
    return 2 * (values - torch.floor(values + 0.5)).abs()


def _check_size(num_frames: int, num_novel_views: int) -> None:
    if not (_is_int(num_frames) and _is_int(num_novel_views) and num_frames >= 1 and num_novel_views >= 1):
        raise ValueError(f"a CFG grid needs num_frames >= 1 and num_views >= 1, got {num_frames} and {num_novel_views}")


def _check_params(preset: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params merged over the preset's defaults; numbers must be finite scales in [0, 30]."""
    if preset not in PRESETS:
        raise ValueError(f"unknown CFG grid preset {preset!r}; use one of {sorted(PRESETS)}")
    defaults = PRESETS[preset]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"CFG grid preset {preset!r} has no params {unknown}; its params are {sorted(defaults)}")
    merged = {**defaults, **params}
    for name, value in merged.items():
        if isinstance(defaults[name], str):
            if value not in EASINGS:
                raise ValueError(f"CFG grid param {name!r} = {value!r} is not an easing; use one of {sorted(EASINGS)}")
        else:
            merged[name] = _check_scale(value, f"CFG grid param {name!r}")
    return merged


def _parse_overrides(overrides: Any) -> dict[tuple[int, int], float]:
    if not isinstance(overrides, dict):
        raise ValueError(
            f'CFG grid \'overrides\' must be a JSON object like {{"0,1": 2.5}} (frame t, view v), got {overrides!r}'
        )
    cells: dict[tuple[int, int], float] = {}
    for key, value in overrides.items():
        match = _CELL_KEY.match(key)
        if not match:
            raise ValueError(f'CFG grid override key {key!r} is not "t,v" (two indices from 0, e.g. "3,1")')
        cell = (int(match[1]), int(match[2]))
        if cell in cells:
            raise ValueError(f"CFG grid override {key!r} repeats cell {cell}; keep one entry per cell")
        cells[cell] = _check_scale(value, f"CFG grid override {key!r}")
    return cells


def _check_scale(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not MIN_SCALE <= value <= MAX_SCALE:
        raise ValueError(f"{what} = {value} is outside [{MIN_SCALE:g}, {MAX_SCALE:g}]; use a CFG scale in that range")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
