"""The procedural dynamic scene: exact ray casting, consistent masks/depth, known motion, controlled perturbations."""
import math

import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.synthetic import (
    Ellipsoid,
    default_scene,
    move_points,
    perturb_views,
    render_scene,
)

FRONT = OrbitCameras([0.0], [0.0])
BALL = (Ellipsoid((0.0, 0.0, 0.0), (0.3, 0.3, 0.3), ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))),)


def test_shapes_and_white_background():
    out = render_scene(OrbitCameras([0.0, 10.0], [0.0, 90.0]), 3, 24, 16)
    assert out.rgb.shape == (2, 3, 16, 24, 3) and out.mask.shape == out.depth.shape == (2, 3, 16, 24)
    background = out.mask == 0
    assert background.any() and (out.mask == 1).any()
    assert torch.all(out.rgb[background] == 1.0)
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1


def test_depth_of_a_centred_ball_is_exact():
    out = render_scene(FRONT, 1, 9, 9, scene=BALL, supersample=1)
    # the central ray travels from the camera at distance 2 to the sphere of radius 0.3
    assert out.mask[0, 0, 4, 4] == 1
    torch.testing.assert_close(out.depth[0, 0, 4, 4], torch.tensor(2.0 - 0.3))
    # silhouette: a pixel is object iff its ray passes within 0.3 of the origin
    origins, dirs = (r[0] for r in FRONT.rays(9, 9))
    closest = torch.linalg.cross(origins, dirs).norm(dim=-1).view(9, 9)  # distance of the ray line to the origin
    assert torch.equal(out.mask[0, 0] == 1, closest < 0.3)


def test_motion_moves_surface_points_onto_the_surface():
    scene = default_scene()
    generator = torch.Generator().manual_seed(0)
    for shape in scene:
        matrix, centre = shape.transform(0.0)
        unit = torch.nn.functional.normalize(torch.randn(50, 3, generator=generator, dtype=torch.float64), dim=-1)
        points = unit @ matrix.T + centre
        torch.testing.assert_close(move_points(points, 0.0, scene), points)
        later_matrix, later_centre = shape.transform(0.3)
        moved = move_points(points, 0.3, scene)
        torch.testing.assert_close(moved, unit @ later_matrix.T + later_centre)


def test_scene_moves_and_stays_in_view():
    out = render_scene(FRONT, 4, 32, 32)
    assert not torch.equal(out.rgb[0, 0], out.rgb[0, 1])
    border = torch.cat((out.mask[..., 0, :], out.mask[..., -1, :], out.mask[..., :, 0], out.mask[..., :, -1]), -1)
    assert border.max() == 0  # the object never touches the frame edge


def test_perturbation_is_controlled():
    clean = render_scene(OrbitCameras([0.0] * 3, [0.0, 120.0, 240.0]), 2, 32, 32).rgb
    noisy = perturb_views(clean, colour_shift=0.05, shift_px=1.5, seed=3)
    assert torch.equal(noisy[0], clean[0])  # the input view stays exact
    assert not torch.allclose(noisy[1], clean[1])
    zero = perturb_views(clean, colour_shift=0.0, shift_px=0.0)
    torch.testing.assert_close(zero, clean, atol=1e-5, rtol=0)
    # a pure colour gain of at most 5 % changes no pixel by more than 5 %
    gain_only = perturb_views(clean, colour_shift=0.05, shift_px=0.0, seed=3)
    assert (gain_only - clean).abs().max() <= 0.05 + 1e-5


def test_texture_is_a_checkerboard():
    shape = BALL[0]
    angles = torch.tensor([0.1, 0.1 + 2 * math.pi / shape.checks])  # neighbouring longitude cells
    local = torch.stack((angles.sin(), torch.zeros(2), angles.cos()), dim=-1)
    colours = shape.albedo(local)
    assert not torch.equal(colours[0], colours[1])
