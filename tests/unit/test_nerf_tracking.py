"""Each frame's mesh slides along its surface to where that frame's views show the colours the other frames agree on
(`sv4d_lib.nerf.tracking`)."""
from __future__ import annotations

import numpy as np
import torch
import trimesh

from sv4d_lib.nerf.tracking import TrackingSettings, track_frames, tangent_axes
from sv4d_lib.nerf.projection import ViewSet

from .test_nerf_photo_consistency import CAMERAS, PIXEL, RADIUS, _views


def _turned(vertices: np.ndarray, pixels: float) -> np.ndarray:
    """Vertices turned about +y so that the equator moves `pixels` pixels along the surface."""
    angle = pixels * PIXEL / RADIUS
    c, s = np.cos(angle), np.sin(angle)
    return (vertices @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]], np.float32).T).astype(np.float32)


def _ball() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces), np.asarray(mesh.edges_unique)


def _slip(moved: np.ndarray, vertices: np.ndarray) -> float:
    """Mean distance (pixels at the orbit centre) of a frame's vertices from where the views show their colours."""
    return float(np.linalg.norm(moved - vertices, axis=1).mean() / PIXEL)


def test_slipped_frames_slide_to_where_their_colours_agree():
    """The views show a still patterned ball; the mesh of each frame has slipped around it by a different amount (a
    warp that put the texture up to a pixel off at some frames). Registered, the frames agree again: each sits close
    to where the views show its colours."""
    vertices, faces, edges = _ball()
    slips = (-1.0, 0.5, 1.0, -0.5)
    frames = np.stack([_turned(vertices, s) for s in slips])
    (moved,), report = track_frames(faces, edges, [frames], _views(len(slips)))
    before = [_slip(f, vertices) for f in frames]
    after = [_slip(f, vertices) for f in moved]
    # measured: 0.79/0.39/0.79/0.39 px -> 0.28/0.12/0.28/0.12 px (the smallest-move rule instead of the centroid
    # of the best candidates: -> 0.57/0.39/0.60/0.39)
    assert max(after) < 0.4 and np.mean(after) < 0.5 * np.mean(before), (before, after)
    # along the surface only: the ball keeps its radius
    assert np.abs(np.linalg.norm(moved, axis=-1) - RADIUS).max() < 0.3 * PIXEL
    assert report.rounds == 2 and report.decided_share > 0.5  # measured 0.89


def test_flat_colour_slides_nothing():
    """Where the views show one colour no position along the surface is better than another: nothing moves."""
    views = _views(2)
    grey = ViewSet(torch.where(views.masks[..., None] > 0.5, 0.5, 1.0).expand(-1, -1, -1, -1, 3).contiguous(),
                   views.masks, CAMERAS)
    vertices, faces, edges = _ball()
    frames = np.stack([vertices, _turned(vertices, 1.0)])
    (moved,), report = track_frames(faces, edges, [frames], grey)
    np.testing.assert_allclose(moved, frames, atol=1e-6)
    assert report.decided_share == 0.0


def test_other_frame_counts_slide_by_the_slides_interpolated_in_time():
    vertices, faces, edges = _ball()
    frames = np.stack([_turned(vertices, -1.0), _turned(vertices, 1.0), vertices])
    animation = np.stack([vertices] * 5)  # the clip at 5 frames: t = 0, .25, .5, .75, 1
    (moved, animated), _ = track_frames(faces, edges, [frames, animation], _views(3),
                                           TrackingSettings(rounds=1))
    np.testing.assert_allclose(animated[0], vertices + (moved[0] - frames[0]), atol=1e-6)
    np.testing.assert_allclose(animated[2], vertices + (moved[1] - frames[1]), atol=1e-6)
    np.testing.assert_allclose(animated[1], vertices + 0.5 * (moved[0] - frames[0]) + 0.5 * (moved[1] - frames[1]),
                               atol=1e-6)


def test_tangent_axes_are_orthonormal_and_tangent():
    normals = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    normals[:3] = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.999, 0.0447]])  # the poles
    first, second = tangent_axes(normals)
    for a, b in ((first, normals), (second, normals), (first, second)):
        assert (a * b).sum(-1).abs().max() < 1e-5
    assert (first.norm(dim=-1) - 1).abs().max() < 1e-5 and (second.norm(dim=-1) - 1).abs().max() < 1e-5
    # the first axis is horizontal wherever the normal is not near ±y, so that neighbours' axes agree
    side = normals[:, 1].abs() < 0.97
    assert first[side, 1].abs().max() < 1e-6 and side.sum() > 400
