"""4D export on fields with known answers: surface level and cleanup, the per-frame vertex solve, UV baking, the
animated GLB (round trip, Khronos validator, trimesh/pygltflib), the whole export, and interrupts."""
import math
import threading
import time

import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf.vertex_solve import neighbour_fill, solve_frames
from sv4d_lib.nerf.export import ExportSettings, export_4d, safe_stem
from sv4d_lib.nerf.gltf import AnimatedMesh, animated_glb, read_glb
from sv4d_lib.nerf.mesh import SurfaceSettings, density_grid, extract_surface, surface_level, vertex_normals
from sv4d_lib.nerf.raycast import render_mesh
from sv4d_lib.nerf.texture import BakeSettings, bake_texture, uv_atlas

from .analytic_field import AnalyticField
from .gltf_validator import validate_glb

# A warp whose Jacobian I + t·M has eigenvalues far from 1: the fixed-point iteration x ← v − Δ(x, t) diverges
# (spectral radius of t·M is 1.4 at t = 1), Gauss–Newton does not.
STRETCH = ((1.4, 0.0, 0.0), (0.0, -0.3, 0.2), (0.0, 0.0, 0.5))


def test_sharp_ball_surface_sits_on_its_radius_with_outward_normals():
    field = AnalyticField(radii=(0.3,))
    mesh, report = extract_surface(field, SurfaceSettings(resolution=48, smoothing_iterations=0, face_budget=0))
    cell = 2 * field.bound / 47
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - 0.3).max() < cell
    assert mesh.is_watertight and mesh.volume > 0  # faces wound outwards
    normals = vertex_normals(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces))
    assert (np.sum(normals * mesh.vertices, axis=1) > 0.9 * radii).all()
    assert report.components_found == 1 and report.components_dropped == 0


def test_surface_level_is_where_a_ray_becomes_half_opaque():
    """Ball with a linear density ramp σ = g·(R − r) inside: a ray through the centre is half opaque at depth
    d* = sqrt(2 ln 2 / g); oblique rays reach it sooner, so the level is at most g·d* and the mesh lies between
    R − d* and R, where renders show the surface (a constant level of 10 would put it at R − 10/g, deeper than d*
    for this g). Grazing rays cross near R, and the level is a low quantile of the crossings, so it lies in the
    outer part of that shell."""
    g, radius, resolution = 40.0, 0.4, 96
    axis = torch.linspace(-0.6, 0.6, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    sigma = (g * (radius - points.norm(dim=-1))).clamp(min=0)
    level = surface_level(sigma, 1.2 / (resolution - 1))
    depth = math.sqrt(2 * math.log(2) / g)
    assert 0 < level <= g * depth * 1.02 and level < 10  # the surface σ = level lies less than d* deep


def test_floaters_are_dropped_and_the_face_budget_holds():
    field = AnalyticField(centres=((0.0, 0.0, 0.0), (0.45, 0.45, 0.45)), radii=(0.3, 0.04))
    settings = SurfaceSettings(resolution=64, face_budget=2000, smoothing_iterations=3)
    mesh, report = extract_surface(field, settings)
    assert report.components_found == 2 and report.components_dropped == 1
    assert len(mesh.faces) <= 2000 < report.faces_extracted
    assert np.linalg.norm(mesh.vertices, axis=1).max() < 0.35  # only the big ball is left
    assert mesh.volume > 0


def test_empty_field_has_no_surface():
    with pytest.raises(ValueError, match="no surface"):
        extract_surface(AnalyticField(peak=0.01), SurfaceSettings(resolution=16))


def test_density_grid_skips_empty_space_without_changing_the_surface():
    field = AnalyticField(radii=(0.2,))
    grid = density_grid(field, 33)
    axis = torch.linspace(-0.6, 0.6, 33)
    dense = field.canonical(torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3))[0]
    dense = dense.reshape(33, 33, 33)
    near = dense >= 1e-3
    torch.testing.assert_close(grid[near], dense[near])  # every point that matters was queried
    assert (grid[~near] <= 1.0).all()


def test_vertex_solve_inverts_a_warp_where_the_fixed_point_iteration_diverges():
    field = AnalyticField(num_frames=4, matrix=STRETCH, shift=(0.05, -0.02, 0.0))
    canonical = (torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.3
    times = [0.0, 1 / 3, 2 / 3, 1.0]
    frames, solves = solve_frames(field, canonical.numpy(), np.zeros((0, 2), np.int64), times)
    for k, t in enumerate(times):
        np.testing.assert_allclose(frames[k], field.inverse_warp(canonical, t).numpy(), atol=1e-5)
        assert solves[k].max_residual < 1e-5 and solves[k].unconverged == 0
    # the plain fixed-point iteration on the same problem blows up (why the solve is Gauss–Newton)
    v, x = canonical, canonical.clone()
    for _ in range(30):
        x = v - (field.warp(x, torch.ones(500)) - x)
    assert not (field.warp(x, torch.ones(500)) - v).norm(dim=-1).max() < 1e-2


def test_vertex_solve_works_under_inference_mode():
    """ComfyUI executes nodes under torch.inference_mode; the solve's Jacobians still need autograd."""
    field = AnalyticField(num_frames=2, matrix=STRETCH, shift=(0.05, -0.02, 0.0))
    canonical = (torch.rand(50, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.3
    with torch.inference_mode():
        frames, solves = solve_frames(field, canonical.numpy(), np.zeros((0, 2), np.int64), [0.0, 1.0])
    np.testing.assert_allclose(frames[1], field.inverse_warp(canonical, 1.0).numpy(), atol=1e-5)
    assert solves[1].unconverged == 0


def test_a_root_where_the_renders_show_nothing_is_not_a_vertex_position():
    """A backward warp also maps space the renders cull (outside the frame's visual hull) onto the canonical
    surface; a vertex solved there would poke out of every view's silhouette, so it moves with its neighbours."""
    field = AnalyticField(num_frames=2, shift=(0.1, 0.0, 0.0))  # Δ = t·shift: at t=1 every vertex sits 0.1 to −x
    canonical = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.25, 0.0, 0.0]], np.float32)
    edges = np.array([[0, 1], [1, 2]])
    g = field.occupancy.resolution
    x = field.occupancy.cell_points().view(g, g, g, 3)[..., 0].reshape(-1)
    hulls = field.occupancy.hulls.clone()
    hulls[1] = x < 0.1  # frame 1's hull ends before the third vertex's root at x = 0.15
    field.occupancy.set_hulls(hulls)
    frames, solves = solve_frames(field, canonical, edges, [0.0, 1.0])
    np.testing.assert_allclose(frames[1, :2], canonical[:2] - [0.1, 0.0, 0.0], atol=1e-5)  # exact roots kept
    assert solves[1].unconverged == 1 and solves[0].unconverged == 0
    # the third vertex takes the displacement of its valid neighbour
    np.testing.assert_allclose(frames[1, 2] - canonical[2], frames[1, 1] - canonical[1], atol=1e-6)


def test_unconverged_vertices_follow_their_neighbours():
    displacement = np.array([[0.0, 0, 0], [1.0, 0, 0], [9.0, 9, 9], [9.0, 9, 9], [3.0, 0, 0]])
    bad = np.array([False, False, True, True, False])
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    filled = neighbour_fill(displacement, bad, edges)
    np.testing.assert_allclose(filled[[0, 1, 4]], displacement[[0, 1, 4]])
    np.testing.assert_allclose(filled[2], [1.0, 0, 0])  # from vertex 1 (vertex 3 was unknown in that round)
    np.testing.assert_allclose(filled[3], [3.0, 0, 0])  # from vertex 4


def test_baked_texture_reproduces_the_field_colour_on_the_surface():
    field = AnalyticField(radii=(0.35,))
    mesh, _ = extract_surface(field, SurfaceSettings(resolution=40, face_budget=1500))
    vertices = np.asarray(mesh.vertices, np.float32)
    cut = uv_atlas(vertices, np.asarray(mesh.faces), 256, 2)
    np.testing.assert_array_equal(cut.vertices, vertices[cut.source])
    normals = vertex_normals(vertices, np.asarray(mesh.faces))[cut.source]
    texture = bake_texture(field, cut, BakeSettings(size=256, padding=2))
    # render the textured mesh and compare each hit pixel with the field's colour at the hit point
    cameras = OrbitCameras((20.0, -10.0), (30.0, 200.0))
    animated = AnimatedMesh(cut.vertices, normals, cut.faces, cut.vertices[None], uv=cut.uv, texture=texture)
    rgb, alpha = render_mesh(animated, 0, cameras, 64, 64, supersample=1)
    origins, dirs = cameras.rays(64, 64)
    hits = trimesh.ray.ray_pyembree.RayMeshIntersector(trimesh.Trimesh(cut.vertices, cut.faces))
    tri, ray, points = hits.intersects_id(origins.reshape(-1, 3).numpy(), dirs.reshape(-1, 3).numpy(),
                                          multiple_hits=False, return_locations=True)
    expected = field.canonical(torch.from_numpy(points).float())[1].numpy()
    found = rgb.reshape(-1, 3).numpy()[ray]
    assert alpha.reshape(-1)[ray].min() == 1.0 and len(ray) > 1000
    assert np.abs(found - expected).mean() < 0.01 and np.quantile(np.abs(found - expected), 0.99) < 0.05
    assert (texture.reshape(-1, 3).max(axis=1) > 0).all()  # dilated: no black texel left between charts


def _animated(colour: str) -> AnimatedMesh:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    vertices = np.asarray(sphere.vertices, np.float32)
    faces = np.asarray(sphere.faces, np.uint32)
    frames = np.stack([vertices * np.float32(1 + 0.2 * k) + np.float32([0, 0.1 * k, 0]) for k in range(3)])
    normals = vertex_normals(vertices, faces)
    mesh = AnimatedMesh(vertices, normals, faces, frames, frame_normals=np.stack([normals] * 3))
    if colour == "texture":
        mesh.uv = ((vertices[:, :2] / 0.3 + 1) / 2).astype(np.float32)
        mesh.texture = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    else:
        mesh.colours = np.tile(np.float32([[0.8, 0.4, 0.1]]), (len(vertices), 1))
    return mesh


@pytest.mark.parametrize("colour", ["texture", "vertex"])
def test_animated_glb_round_trip_and_structure(tmp_path, colour):
    mesh = _animated(colour)
    data = animated_glb(mesh, fps=10.0, name="walk", closes_loop=False)
    back = read_glb(data)
    np.testing.assert_allclose(back.frames, mesh.frames, atol=1e-6)
    np.testing.assert_allclose(back.frame_normals, mesh.frame_normals, atol=1e-6)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    if colour == "texture":
        np.testing.assert_array_equal(back.texture, mesh.texture)  # PNG is lossless
        np.testing.assert_allclose(back.uv, mesh.uv)
    else:
        np.testing.assert_allclose(back.colours, mesh.colours, atol=3 / 255)
    path = tmp_path / "anim.glb"
    path.write_bytes(data)
    gltf = pygltflib.GLTF2().load(str(path))
    animation = gltf.animations[0]
    assert animation.name == "walk" and gltf.meshes[0].weights == [1.0, 0.0, 0.0]
    times = gltf.accessors[animation.samplers[0].input]
    # not a closed loop: a fourth key at 3/fps blends back to frame 0, one frame interval like the others
    assert times.count == 4 and times.max == pytest.approx([0.3])
    assert len(trimesh.load(path, force="mesh").vertices) == len(mesh.vertices)
    closed = pygltflib.GLTF2.load_from_bytes(animated_glb(mesh, fps=10.0, closes_loop=True))
    assert closed.accessors[closed.animations[0].samplers[0].input].max == pytest.approx([0.2])


@pytest.mark.parametrize("colour", ["texture", "vertex"])
def test_animated_glb_passes_khronos_validator(tmp_path, colour):
    path = tmp_path / "anim.glb"
    path.write_bytes(animated_glb(_animated(colour), fps=12.0, image_format="jpeg"))
    issues = validate_glb(path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_export_writes_a_valid_textured_animated_glb_and_turntable(tmp_path):
    field = AnalyticField(radii=(0.25,), num_frames=3, shift=(0.0, 0.1, 0.0))
    settings = ExportSettings(surface=SurfaceSettings(resolution=32, face_budget=800), bake=BakeSettings(size=64),
                              turntable_size=48)
    stages = []
    result = export_4d(field, tmp_path, "../odd name", fps=10.0, settings=settings,
                       progress=lambda stage, done, total: stages.append(stage))
    assert result.glb == tmp_path / "_odd_name.glb" and result.turntable == tmp_path / "_odd_name_turntable.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_odd_name.glb", "_odd_name_turntable.mp4"]
    assert list(dict.fromkeys(stages)) == ["surface", "deformation", "consistency", "silhouettes", "tracking",
                                           "baking", "writing", "turntable"]
    assert result.file_bytes == result.glb.stat().st_size and result.max_residual < 1e-5
    back = read_glb(result.glb.read_bytes())
    # constant backward warp Δ = t·(0, 0.1, 0): frame k sits 0.1·t lower than the canonical mesh
    np.testing.assert_allclose(back.frames[2] - back.vertices, np.tile([0, -0.1, 0], (len(back.vertices), 1)),
                               atol=1e-5)
    assert not result.morph_normals  # a translation turns no normal
    assert validate_glb(result.glb)["numErrors"] == 0
    import imageio_ffmpeg
    assert imageio_ffmpeg.count_frames_and_secs(str(result.turntable))[0] == 36  # 3 frames × 12 loops


def test_export_refuses_a_missing_frame_rate(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        export_4d(AnalyticField(), tmp_path, "x", fps=0.0)
    assert not any(tmp_path.iterdir())


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("stage", ["surface", "deformation", "baking", "turntable"])
def test_interrupt_stops_within_a_second_and_leaves_nothing(tmp_path, stage):
    """A large export (160³ grid, 30k faces, 1024² texture) is interrupted 0.3 s into a stage: the next progress
    call raises, and the export must be gone within 1 s of the request, with no file left."""
    field = AnalyticField(centres=((0.0, 0.0, 0.0), (0.2, 0.25, 0.0)), radii=(0.35, 0.15), num_frames=12,
                          matrix=STRETCH)
    big = stage != "turntable"  # the turntable's cost does not depend on the stages before it: keep those small
    settings = ExportSettings(surface=SurfaceSettings(resolution=160 if big else 64, face_budget=30000),
                              bake=BakeSettings(size=1024 if big else 128), turntable_size=256)
    requested: list[float] = []

    def progress(name: str, done: int, total: int) -> None:
        if name == stage and not requested:
            threading.Timer(0.3, lambda: requested.append(time.perf_counter())).start()
        if requested:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        export_4d(field, tmp_path, "big", fps=10.0, settings=settings, progress=progress)
    stopped = time.perf_counter()
    assert stopped - requested[0] < 1.0
    assert list(tmp_path.iterdir()) == []


def test_safe_stem():
    assert safe_stem("sv4d2/4d run") == "sv4d2_4d_run"
    with pytest.raises(ValueError, match="no usable characters"):
        safe_stem("../")
