"""Least-squares texture correction through the mesh's own rendering (sv4d_lib/nerf/texture_fit.py), on scenes with
known answers: a striped box whose views are rendered as the GLB renderer renders them. A texture that already
reproduces the views is left as it is (the fit's model of the renderer is the renderer), a smooth colour error the
projection would keep (a lighting drift, a colour cast) is taken out, seen from held-out cameras too."""
from __future__ import annotations

import numpy as np
import pytest

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf.gltf import AnimatedMesh
from sv4d_lib.nerf.projection import ViewSet
from sv4d_lib.nerf.texture import finish_texture, texel_samples
from sv4d_lib.nerf.texture_fit import fit_texture
from tests.unit.test_nerf_projection import HELD_OUT, SIZE, TEXELS, TRAIN, box, painted, psnr, videos_of


@pytest.fixture(scope="module")
def scene():
    vertices, faces = box((0, 0, 0), (0.5, 0.6, 0.4))
    cut, truth, covered = painted(vertices, faces)
    frames = vertices[None]
    mesh = AnimatedMesh(cut.vertices, cut.vertices, cut.faces, frames[:, cut.source], uv=cut.uv, texture=truth)
    return cut, truth, covered, frames, mesh, ViewSet(*videos_of(mesh, TRAIN), TRAIN)


def textured(mesh: AnimatedMesh, texture: np.ndarray) -> AnimatedMesh:
    return AnimatedMesh(mesh.vertices, mesh.vertices, mesh.faces, mesh.frames, uv=mesh.uv, texture=texture)


def test_a_texture_that_reproduces_the_views_is_left_as_it_is(scene):
    cut, truth, covered, frames, _, views = scene
    colours = truth.reshape(-1, 3) / 255.0
    fitted, report = fit_texture(colours, covered, cut, frames, views, samples_per_axis=1)
    # the views are renders of this very texture: any mismatch between the fit's model and the renderer (half a
    # pixel, half a texel, the white of missed sub-rays) would show up as a correction
    assert np.abs(fitted - colours)[covered].max() < 1e-3
    assert report.psnr_before > 60 and report.pixels > 0.05 * SIZE * SIZE * len(TRAIN.azimuths_deg)



def test_a_smooth_colour_error_is_taken_out_also_for_held_out_cameras(scene):
    cut, truth, covered, frames, mesh, views = scene
    texel, triangles, weights = texel_samples(cut, TEXELS)
    points = np.einsum("pk,pkd->pd", weights, cut.vertices[triangles])
    cast = np.zeros((TEXELS * TEXELS, 3))
    cast[texel] = np.stack((0.25 * np.sin(4 * points[:, 0]), 0.15 * np.cos(3 * points[:, 1]),
                            -0.2 * points[:, 2] / 0.2), axis=-1)  # up to ±0.25: a projected texture's drift
    drifted = np.clip(truth.reshape(-1, 3) / 255.0 + cast, 0, 1)
    fitted, report = fit_texture(drifted, covered, cut, frames, views, samples_per_axis=1)
    expected = videos_of(mesh, HELD_OUT)[0]
    before = psnr(videos_of(textured(mesh, finish_texture(drifted, covered)), HELD_OUT)[0], expected)
    after = psnr(videos_of(textured(mesh, finish_texture(fitted, covered)), HELD_OUT)[0], expected)
    assert report.psnr_after > report.psnr_before + 8, report
    assert after > before + 8, (before, after)


def test_a_mesh_that_no_view_sees_is_an_error(scene):
    cut, truth, covered, frames, _, views = scene
    away = OrbitCameras((0.0,), (0.0,))
    dark = ViewSet(views.videos[:1], views.masks[:1], away)
    with pytest.raises(ValueError, match="covers no pixel"):
        fit_texture(truth.reshape(-1, 3) / 255.0, covered, cut, frames + np.float32([0, 5, 0]), dark)
    with pytest.raises(ValueError, match="frames"):
        fit_texture(truth.reshape(-1, 3) / 255.0, covered, cut, np.concatenate([frames, frames]), views)
