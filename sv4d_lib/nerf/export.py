"""Dynamic NeRF → animated mesh: canonical marching cubes, vertices carried through the deformation per frame.

One mesh is extracted in canonical space (= frame 0), so topology, colours and normals stay fixed and each frame
is a morph target. The deformation is a backward warp `x_c = x + Δ(x, t)`; a vertex's position at time t solves
`x + Δ(x, t) = v_c`, found by the fixed-point iteration `x ← v_c − Δ(x, t)` (nerf4d.md §4.4). The animated GLB
(morph targets + a weights animation) is written by our own small writer because trimesh cannot write morph
targets or animations; per-frame static GLB/OBJ files come from trimesh for viewers without morph support.
"""
from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .field import DynamicNeRF

log = logging.getLogger(__name__)

DEFAULT_DENSITY_LEVEL = 10.0  # σ at the surface: one grid cell of σ=10 at 128³ is ~10 % opaque
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_FLOAT, _UNSIGNED_BYTE, _UNSIGNED_INT = 5126, 5121, 5125


@dataclass
class CanonicalMesh:
    """Mesh in canonical space: vertices/normals (N, 3) float32, faces (M, 3) int64, colours (N, 3) sRGB [0, 1]."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colours: np.ndarray


@dataclass
class Export4D:
    """Files written by `export_4d`: the animated GLB and per-frame static GLB/OBJ files."""

    animated_glb: Path
    frame_glbs: list[Path]
    frame_objs: list[Path]
    max_residual: float  # worst fixed-point residual of the per-frame vertex solve (world units)


def _chunked(fn, points: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    return torch.cat([fn(points[i:i + chunk]) for i in range(0, points.shape[0], chunk)])


@torch.no_grad()
def extract_mesh(field: DynamicNeRF, resolution: int = 128, level: float = DEFAULT_DENSITY_LEVEL) -> CanonicalMesh:
    """Marching cubes (scikit-image, `ascent`: outward winding for a density) of the canonical density."""
    import skimage.measure
    import trimesh

    if resolution < 8:
        raise ValueError(f"mesh resolution must be at least 8, got {resolution}")
    axis = torch.linspace(-field.bound, field.bound, resolution, device=field.device)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    density = _chunked(lambda x: field.canonical(x)[0], points).reshape((resolution,) * 3).cpu().numpy()
    if not density.max() > level:
        raise ValueError(
            f"the field has no surface: its density never exceeds the level {level} (max {density.max():.3g}); fit "
            "longer or lower the density level"
        )
    spacing = 2 * field.bound / (resolution - 1)
    vertices, faces, _, _ = skimage.measure.marching_cubes(
        density, level=level, spacing=(spacing,) * 3, gradient_direction="ascent"
    )
    mesh = trimesh.Trimesh(vertices - field.bound, faces, process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    normals = np.asarray(mesh.vertex_normals, dtype=np.float32)
    bad = ~np.isfinite(normals).all(axis=1) | (np.linalg.norm(normals, axis=1) < 0.5)
    normals[bad] = (0.0, 1.0, 0.0)
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    colours = _chunked(lambda x: field.canonical(x)[1], torch.from_numpy(vertices).to(field.device))
    return CanonicalMesh(vertices, np.asarray(mesh.faces, dtype=np.int64), normals, colours.cpu().numpy())


@torch.no_grad()
def deform_vertices(
    field: DynamicNeRF, vertices: torch.Tensor, t: float, iterations: int = 30
) -> tuple[torch.Tensor, torch.Tensor]:
    """Observation-space positions at time t of canonical vertices (N, 3), and the residual ‖x + Δ(x,t) − v_c‖."""
    times = torch.full((vertices.shape[0],), float(t), device=vertices.device)
    x = vertices.clone()
    for _ in range(iterations):
        x = vertices - (field.warp(x, times) - x)
    return x, (field.warp(x, times) - vertices).norm(dim=-1)


def _srgb_to_linear(colours: np.ndarray) -> np.ndarray:
    """glTF vertex colours are linear (viewers convert to sRGB on display)."""
    import kornia.color

    return kornia.color.rgb_to_linear_rgb(torch.from_numpy(colours).float().T[:, :, None])[:, :, 0].T.numpy()


class _GlbBuilder:
    """Collects 4-byte-aligned buffer views and accessors for one binary buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, accessor_type: str, target: int | None = None, normalized: bool = False,
            bounds: bool = False) -> int:
        component = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UNSIGNED_BYTE,
                     np.dtype(np.uint32): _UNSIGNED_INT}[array.dtype]
        data = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob += data + b"\0" * (-len(data) % 4)
        self.views.append(view)
        accessor = {"bufferView": len(self.views) - 1, "componentType": component, "type": accessor_type,
                    "count": int(array.shape[0])}
        if normalized:
            accessor["normalized"] = True
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            accessor["min"] = flat.min(axis=0).tolist()
            accessor["max"] = flat.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def animated_glb(mesh: CanonicalMesh, frames: np.ndarray, fps: float) -> bytes:
    """GLB bytes: one primitive with one morph target per frame (`frames` (K, N, 3)) and a weights animation.

    The base mesh is the canonical one; target k holds `frames[k] − vertices`. The default weights show frame 0,
    so viewers without animation support still show a sensible mesh.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    build = _GlbBuilder()
    colours = np.clip(np.round(_srgb_to_linear(mesh.colours) * 255), 0, 255).astype(np.uint8)
    rgba = np.concatenate((colours, np.full((colours.shape[0], 1), 255, np.uint8)), axis=1)
    attributes = {
        "POSITION": build.add(mesh.vertices.astype(np.float32), "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": build.add(mesh.normals.astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "COLOR_0": build.add(rgba, "VEC4", _ARRAY_BUFFER, normalized=True),
    }
    indices = build.add(mesh.faces.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER, bounds=True)
    primitive = {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}
    num_frames = frames.shape[0]
    mesh_json: dict = {"primitives": [primitive], "name": "sv4d2_4d"}
    document: dict = {
        "asset": {"version": "2.0", "generator": "comfyui-sv4d2"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "sv4d2_4d"}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0,
                                                "roughnessFactor": 1.0}, "doubleSided": True}],
        "meshes": [mesh_json],
    }
    if num_frames > 1:
        deltas = frames.astype(np.float32) - mesh.vertices.astype(np.float32)[None]
        primitive["targets"] = [{"POSITION": build.add(d, "VEC3", _ARRAY_BUFFER, bounds=True)} for d in deltas]
        mesh_json["weights"] = [1.0] + [0.0] * (num_frames - 1)
        mesh_json["extras"] = {"targetNames": [f"frame_{k:03d}" for k in range(num_frames)]}
        times = build.add((np.arange(num_frames, dtype=np.float32) / fps), "SCALAR", bounds=True)
        weights = build.add(np.eye(num_frames, dtype=np.float32).reshape(-1), "SCALAR")
        document["animations"] = [{
            "name": "deformation",
            "samplers": [{"input": times, "output": weights, "interpolation": "LINEAR"}],
            "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
        }]
    document["buffers"] = [{"byteLength": len(build.blob)}]
    document["bufferViews"] = build.views
    document["accessors"] = build.accessors
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = bytes(build.blob)
    length = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, length) + struct.pack("<I4s", len(text), b"JSON") + text
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def safe_stem(name: str) -> str:
    """File-name stem without path separators or odd characters (letters, digits, `._-` kept)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".")
    if not stem.strip("_-"):
        raise ValueError(f"file name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return stem


def export_4d(
    field: DynamicNeRF,
    directory: str | Path,
    stem: str,
    num_frames: int | None = None,
    resolution: int = 128,
    level: float = DEFAULT_DENSITY_LEVEL,
    fps: float = 12.0,
) -> Export4D:
    """Write `<stem>.glb` (animated) and `<stem>_frames/frame_XXX.{glb,obj}` into `directory`.

    Frames are sampled at t = k / (num_frames − 1) (default: the field's frame count).
    """
    import trimesh

    num_frames = num_frames or field.num_frames
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    stem = safe_stem(stem)
    directory = Path(directory)
    frames_dir = directory / f"{stem}_frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    mesh = extract_mesh(field, resolution, level)
    base = torch.from_numpy(mesh.vertices).to(field.device)
    positions, worst = [], 0.0
    for k in range(num_frames):
        moved, residual = deform_vertices(field, base, k / max(num_frames - 1, 1))
        positions.append(moved.cpu().numpy())
        worst = max(worst, float(residual.max()))
    if worst > 1e-3 * field.bound:
        log.warning("4D export: some vertices did not converge in the deformation solve (max residual %.3g)", worst)
    frames = np.stack(positions)
    glb_path = directory / f"{stem}.glb"
    glb_path.write_bytes(animated_glb(mesh, frames, fps))
    linear = np.clip(np.round(_srgb_to_linear(mesh.colours) * 255), 0, 255).astype(np.uint8)
    srgb = np.clip(np.round(mesh.colours * 255), 0, 255).astype(np.uint8)
    glbs, objs = [], []
    for k, vertices in enumerate(frames):
        glbs.append(frames_dir / f"frame_{k:03d}.glb")
        objs.append(frames_dir / f"frame_{k:03d}.obj")
        trimesh.Trimesh(vertices, mesh.faces, vertex_colors=linear, process=False).export(glbs[-1])
        trimesh.Trimesh(vertices, mesh.faces, vertex_colors=srgb, process=False).export(objs[-1])
    return Export4D(glb_path, glbs, objs, worst)
