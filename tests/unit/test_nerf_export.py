"""Mesh export: marching cubes of a known density, the per-frame vertex solve, and a valid animated GLB."""
import math

import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from sv4d_lib.cameras import DEFAULT_FOV_DEG
from sv4d_lib.nerf.export import (
    CanonicalMesh,
    animated_glb,
    deform_vertices,
    export_4d,
    extract_mesh,
    safe_stem,
)
from sv4d_lib.nerf.field import DynamicNeRF, FieldConfig

from .gltf_validator import validate_glb

BOUND = 0.6


def blob_field(num_frames: int = 4) -> DynamicNeRF:
    """An untrained field whose density is exactly the blob exp(b·(1 − ‖x‖/(r·bound))) (density head zeroed)."""
    config = FieldConfig(grid={"n_levels": 2, "log2_hashmap_size": 8}, occupancy_resolution=8)
    field = DynamicNeRF(config, bound=BOUND, radius=2.0, fov_deg=DEFAULT_FOV_DEG, num_frames=num_frames)
    with torch.no_grad():
        field.density_mlp[-1].weight.zero_()
        field.density_mlp[-1].bias.zero_()
    return field.requires_grad_(False)


def test_marching_cubes_finds_the_blob_sphere_with_outward_faces():
    field = blob_field()
    level = 10.0
    mesh = extract_mesh(field, resolution=48, level=level)
    config = field.config
    # exp(b(1 − r/R)) = level  ⇔  r = R(1 − ln(level)/b)
    expected = config.blob_radius * BOUND * (1 - math.log(level) / config.blob_density)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - expected).max() < 2 * BOUND / 47  # within one grid cell
    shape = trimesh.Trimesh(mesh.vertices, mesh.faces)
    assert shape.is_watertight and shape.volume > 0  # positive volume: faces wound outwards
    assert (np.sum(mesh.normals * mesh.vertices, axis=1) > 0).all()
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    assert mesh.colours.shape == mesh.vertices.shape and 0 <= mesh.colours.min() <= mesh.colours.max() <= 1


def test_empty_field_has_no_surface():
    with pytest.raises(ValueError, match="no surface"):
        extract_mesh(blob_field(), resolution=16, level=1e6)


def test_vertex_solve_inverts_the_backward_warp():
    field = blob_field()
    torch.manual_seed(0)
    with torch.no_grad():  # a random deformation, small enough to be a contraction (‖∂Δ/∂x‖ < 1)
        field.deformation[-1].weight.normal_(0, 0.003)
        field.deformation[-1].bias.normal_(0, 0.05)
    canonical = (torch.rand(200, 3) * 2 - 1) * 0.4
    for t in (0.3, 1.0):
        moved, residual = deform_vertices(field, canonical, t)
        times = torch.full((200,), t)
        torch.testing.assert_close(field.warp(moved, times), canonical, atol=1e-5, rtol=0)
        assert residual.max() < 1e-5
        assert (moved - canonical).abs().max() > 1e-3  # it really moved


def _mesh_and_frames() -> tuple[CanonicalMesh, np.ndarray]:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    vertices = np.asarray(sphere.vertices, dtype=np.float32)
    mesh = CanonicalMesh(vertices, np.asarray(sphere.faces), np.asarray(sphere.vertex_normals, dtype=np.float32),
                         np.tile(np.array([[0.8, 0.4, 0.1]], dtype=np.float32), (len(vertices), 1)))
    frames = np.stack([vertices + np.array([0.0, 0.1 * k, 0.0], dtype=np.float32) for k in range(3)])
    return mesh, frames


def test_animated_glb_structure(tmp_path):
    mesh, frames = _mesh_and_frames()
    path = tmp_path / "anim.glb"
    path.write_bytes(animated_glb(mesh, frames, fps=12.0))
    gltf = pygltflib.GLTF2().load(str(path))
    primitive = gltf.meshes[0].primitives[0]
    assert len(primitive.targets) == 3
    assert gltf.meshes[0].weights == [1.0, 0.0, 0.0]
    assert gltf.accessors[primitive.attributes.POSITION].count == len(mesh.vertices)
    assert gltf.accessors[primitive.indices].count == mesh.faces.size
    animation = gltf.animations[0]
    assert [c.target.path for c in animation.channels] == ["weights"]
    times = gltf.accessors[animation.samplers[0].input]
    assert times.count == 3 and times.max == pytest.approx([2 / 12.0])
    assert gltf.accessors[animation.samplers[0].output].count == 9  # K×K one-hot weights
    # target k holds frame k − base: +0.1·k in y
    blob = gltf.binary_blob()
    view = gltf.bufferViews[gltf.accessors[primitive.targets[2]["POSITION"]].bufferView]
    deltas = np.frombuffer(blob[view.byteOffset:view.byteOffset + view.byteLength], np.float32).reshape(-1, 3)
    np.testing.assert_allclose(deltas, np.tile([0.0, 0.2, 0.0], (len(deltas), 1)), atol=1e-6)
    assert len(trimesh.load(path, force="mesh").vertices) == len(mesh.vertices)


def test_animated_glb_passes_khronos_validator(tmp_path):
    mesh, frames = _mesh_and_frames()
    path = tmp_path / "anim.glb"
    path.write_bytes(animated_glb(mesh, frames, fps=12.0))
    issues = validate_glb(path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_export_writes_animated_and_per_frame_files(tmp_path):
    field = blob_field(num_frames=3)
    with torch.no_grad():  # constant backward warp Δ = c, so a vertex sits at v − c in every frame
        field.deformation[-1].bias.copy_(torch.tensor([0.0, 0.05, 0.0]))
    result = export_4d(field, tmp_path, "../odd name", resolution=24)
    assert result.animated_glb == tmp_path / "_odd_name.glb"
    assert [p.name for p in result.frame_glbs] == ["frame_000.glb", "frame_001.glb", "frame_002.glb"]
    assert all(p.is_file() for p in result.frame_glbs + result.frame_objs)
    assert result.max_residual < 1e-5
    canonical = extract_mesh(field, resolution=24)
    frame = trimesh.load(result.frame_objs[1], force="mesh", process=False)
    np.testing.assert_allclose(frame.vertices, canonical.vertices - [0.0, 0.05, 0.0], atol=1e-5)
    issues = validate_glb(result.animated_glb)
    assert issues["numErrors"] == 0, issues["messages"]
    for path in result.frame_glbs[:1]:
        assert validate_glb(path)["numErrors"] == 0


def test_safe_stem():
    assert safe_stem("sv4d2/4d run") == "sv4d2_4d_run"
    with pytest.raises(ValueError, match="no usable characters"):
        safe_stem("../")
