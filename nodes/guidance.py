"""SV4D2 CFG Grid: one classifier-free guidance scale per latent (frame, view), for both ComfyUI sampler paths.

The grid reaches SamplerCustomAdvanced as a GUIDER and core KSampler as a MODEL whose cfg function applies it.
A small route lets the web editor draw exactly the grid the sampler will use without re-implementing the rules.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import torch

from comfy_api.latest import io

from sv4d_lib import guidance
from sv4d_lib.cameras import LAYOUT_LABELS, LAYOUT_PASSES, LAYOUTS, OrbitCameras

from .common import GRID_WIDGET, GridGuider, MAX_SPEC_CHARS, check_grid_size, parse_bounded_spec, with_widget_type
from .types import Cameras

PREVIEW_ROUTE = "/sv4d2/cfg_grid"
CAMERA_PRESETS_ROUTE = "/sv4d2/camera_presets"
MAX_REQUEST_BYTES = 2 * MAX_SPEC_CHARS


def check_grid_spec(grid: str | None) -> bool | str:
    """Validation-time check of a grid spec widget: True, or the problem (linked values arrive as None and are
    checked at run time). A spec with a 'shape' is computed once, so its overrides and range are checked too."""
    if grid is None:
        return True
    try:
        spec = parse_bounded_spec(grid)
        if spec["shape"] is not None:
            guidance.grid_from_spec(spec, *spec["shape"])
    except ValueError as error:
        return str(error)
    return True


def preview_reply(body: Any) -> dict[str, Any]:
    """The POST /sv4d2/cfg_grid answer for a parsed request body; raises ValueError/TypeError naming the problem."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object {grid, num_frames, num_views, azimuths_deg?}")
    spec = parse_bounded_spec(body.get("grid"))
    num_frames, num_views = spec["shape"] or (body.get("num_frames"), body.get("num_views"))
    check_grid_size(num_frames, num_views)
    azimuths = body.get("azimuths_deg")
    if azimuths is not None and not (isinstance(azimuths, list) and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in azimuths)):
        raise ValueError(f"azimuths_deg must be a flat list of numbers in degrees, the input view first "
                         f"({num_views} + 1 of them), or null; got {json.dumps(azimuths)[:80]}")
    # the editor sends the azimuths only; elevations do not shape a grid (OrbitCameras refuses NaN/inf angles)
    cameras = None if azimuths is None else OrbitCameras((0.0,) * len(azimuths), azimuths)
    scales = guidance.grid_from_spec(spec, num_frames, num_views, cameras)
    reply = {
        "num_frames": num_frames, "num_views": num_views, "scales": scales.tolist(),
        "view_distance": guidance.view_distance(num_views, cameras).tolist(),
    }
    if spec["preset"] == "ramp":
        along_time, along_view = guidance.ramp_profiles(spec["params"], num_frames)
        reply["profiles"] = {"time": along_time.tolist(), "view": along_view.tolist()}
    return reply


def preview_json(raw: bytes) -> str:
    """Request bytes → reply JSON text (never NaN/Infinity literals); runs off the event loop."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ValueError("the request JSON is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"the request body is not valid JSON ({error})") from None
    return json.dumps(preview_reply(body), allow_nan=False)


async def read_bounded(request, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds `limit` bytes (declared or sent). A stream read returns
    what has arrived so far, so it is read until its end: one read of a large body is a partial body."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


def grid_cfg_function(scales: torch.Tensor):
    """A `sampler_cfg_function` applying the grid; ComfyUI subtracts its result from x, so it returns x − guided."""
    on_device = {"scales": scales}

    def cfg_function(args: dict[str, Any]) -> torch.Tensor:
        x = args["input"]
        on_device["scales"] = on_device["scales"].to(x.device)
        return x - guidance.apply_cfg_grid(args["cond_denoised"], args["uncond_denoised"], on_device["scales"])

    return cfg_function


def grid_size(model, positive) -> tuple[int, int]:
    """(T, V) the model samples: from the SV4D2 conditioning, else from the SV4D2 model."""
    for _, extra in positive:
        if "sv4d2_num_frames" in extra and "sv4d2_num_views" in extra:
            return int(extra["sv4d2_num_frames"]), int(extra["sv4d2_num_views"])
    inner = getattr(model, "model", None)
    if hasattr(inner, "sv4d2_num_frames") and hasattr(inner, "sv4d2_num_views"):
        return int(inner.sv4d2_num_frames), int(inner.sv4d2_num_views)
    raise ValueError(
        "SV4D2 CFG Grid cannot tell how many frames and views the model samples: connect an SV4D2 model and the "
        "positive conditioning of an SV4D2 encode node"
    )


class CFGGrid(io.ComfyNode):
    """Per-latent CFG from a grid spec (see `sv4d_lib.guidance`), edited in the node's heat-map widget."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2CFGGrid",
            display_name="SV4D2 CFG Grid",
            category="SV4D2/sampling",
            description=(
                "Classifier-free guidance with one scale per frame and view. GUIDER feeds SamplerCustomAdvanced; "
                "MODEL feeds KSampler, whose cfg value is then ignored."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SV4D2 model."),
                io.Conditioning.Input("positive", tooltip="SV4D2 conditioning (carries the frame and view counts)."),
                io.Conditioning.Input("negative", tooltip="SV4D2 unconditional branch."),
                with_widget_type(io.String.Input(
                    "grid",
                    default=guidance.DEFAULT_GRID_SPEC,
                    socketless=True,
                    tooltip=(
                        'Grid spec JSON: {"preset": "official_4v" | "official_8v" | "ramp", "params": {...}, '
                        '"overrides": {"t,v": scale}, "shape": [T, V]}. Scales 0-30.'
                    ),
                ), GRID_WIDGET),
                Cameras.Input(
                    "cameras", optional=True,
                    tooltip="Optional: the 'ramp' preset then measures view distance from these azimuths.",
                ),
            ],
            outputs=[
                io.Guider.Output(display_name="GUIDER", tooltip="For SamplerCustomAdvanced."),
                io.Model.Output(
                    display_name="MODEL",
                    tooltip="For KSampler: the grid replaces CFG, so the sampler's cfg input is ignored.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, grid: str | None) -> bool | str:
        return check_grid_spec(grid)

    @classmethod
    def execute(cls, model, positive, negative, grid: str, cameras=None) -> io.NodeOutput:
        spec = parse_bounded_spec(grid)
        num_frames, num_views = grid_size(model, positive)
        if cameras is not None and cameras.num_novel_views != num_views:
            raise ValueError(
                f"the cameras have {cameras.num_novel_views} novel views but the model samples {num_views}; "
                "connect the cameras used for sampling"
            )
        scales = guidance.grid_from_spec(spec, num_frames, num_views, cameras)
        guider = GridGuider(model, scales)
        guider.set_conds(positive, negative)
        patched = model.clone()
        patched.set_model_sampler_cfg_function(grid_cfg_function(scales), disable_cfg1_optimization=True)
        return io.NodeOutput(guider, patched)


def register_routes() -> None:
    """Routes for the web editors, on the running ComfyUI server if there is one (called once by the extension).

    GET /sv4d2/cfg_grid: presets and their default params; POST /sv4d2/cfg_grid {grid, num_frames, num_views,
    azimuths_deg?}: the grid the sampler would use (or the error), with the view distances and ramp curves to draw;
    GET /sv4d2/camera_presets: the camera layouts of the SV4D2 Cameras presets (input view at elevation 0), their
    labels, the model variants whose passes make each and, per camera, which of them samples it.
    """
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:  # imported outside ComfyUI's server (e.g. a bare script)
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is None or getattr(instance, "sv4d2_routes_registered", False):
        return
    instance.sv4d2_routes_registered = True

    @instance.routes.get(PREVIEW_ROUTE)
    async def presets(request: web.Request) -> web.Response:
        return web.json_response({
            "presets": guidance.PRESETS, "easings": list(guidance.EASINGS), "default": guidance.DEFAULT_GRID_SPEC,
            "range": [guidance.MIN_SCALE, guidance.MAX_SCALE],
        })

    @instance.routes.post(PREVIEW_ROUTE)
    async def preview(request: web.Request) -> web.Response:
        raw = await read_bounded(request, MAX_REQUEST_BYTES)
        if raw is None:
            message = (f"the request body is larger than the {MAX_REQUEST_BYTES} bytes this route accepts; a grid "
                       f"spec is at most {MAX_SPEC_CHARS} characters")
            return web.json_response({"error": message}, status=413)
        try:  # computed in a worker thread: the server's event loop (HTTP, websocket) never waits on it
            reply = await asyncio.get_running_loop().run_in_executor(None, preview_json, raw)
        except (ValueError, TypeError, AttributeError, RecursionError, MemoryError, RuntimeError) as error:
            return web.json_response({"error": str(error) or type(error).__name__}, status=400)
        return web.Response(text=reply, content_type="application/json")

    @instance.routes.get(CAMERA_PRESETS_ROUTE)
    async def camera_presets(request: web.Request) -> web.Response:
        layouts = {name: OrbitCameras.preset(name) for name in LAYOUTS}
        return web.json_response({
            name: {"elevations_deg": list(c.elevations_deg), "azimuths_deg": list(c.azimuths_deg),
                   "label": LAYOUT_LABELS[name], "passes": list(LAYOUT_PASSES[name]),
                   "sampled_by": [list(p) for p in OrbitCameras.preset_passes(name)]}
            for name, c in layouts.items()
        })

    logging.debug("SV4D2: CFG grid preview route registered at %s", PREVIEW_ROUTE)


NODES = [CFGGrid]
