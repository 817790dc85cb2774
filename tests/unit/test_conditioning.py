"""sv4d_lib.conditioning: layouts, first-principles values and input errors (golden parity: tests/golden)."""
from __future__ import annotations

import math

import pytest
import torch

from sv4d_lib import conditioning as C
from sv4d_lib.cameras import OrbitCameras


ORBIT_4V = OrbitCameras.preset("4v")


def test_relative_angles_are_relative_to_the_input_view_and_frame_major():
    polar, azimuth = C.relative_angles(OrbitCameras([10.0, 10.0, 40.0], [30.0, 120.0, 0.0]), num_frames=3)
    assert polar.dtype == azimuth.dtype == torch.float64
    assert polar.shape == azimuth.shape == (6,)
    # views repeat per frame: (t, v) order with v fastest
    assert torch.equal(azimuth[:2], azimuth[2:4]) and torch.equal(azimuth[:2], azimuth[4:])
    assert azimuth[:2].tolist() == pytest.approx([math.radians(90.0), math.radians(330.0)])
    # polar_rel = π/2 − (elevation_v − elevation_0)
    assert polar[:2].tolist() == pytest.approx([math.pi / 2, math.pi / 2 - math.radians(30.0)])


def test_camera_vector_layout_and_uncond():
    vector = C.camera_vector(ORBIT_4V, num_frames=2)
    assert vector.shape == (8, 1280) and vector.dtype == torch.float32
    sigma_part = C.timestep_embedding(torch.full((1,), 1e-5), 256)
    assert torch.equal(vector[:, :256], sigma_part.expand(8, -1))
    # polar part of an elevation-0 orbit embeds π/2 for every view
    assert torch.equal(vector[:, 256:768], C.timestep_embedding(torch.full((8,), math.pi / 2), 512))
    uc = C.camera_vector_uc(ORBIT_4V, num_frames=2)
    assert torch.equal(uc[:, :256], torch.zeros(8, 256)) and torch.equal(uc[:, 256:], vector[:, 256:])


def test_camera_vector_rows_follow_each_novel_views_angles():
    cams = OrbitCameras.preset("8v", elevation_deg=5.0)
    vector = C.camera_vector(cams, 5)
    for v in range(cams.num_novel_views):
        single = C.camera_vector(cams.select([0, v + 1]), 5)  # the input view and novel view v alone
        # equal up to rounding: the official formula takes azimuths relative to the last camera first
        torch.testing.assert_close(vector[v :: cams.num_novel_views], single)


@pytest.mark.parametrize(
    "cameras, frames, message",
    [
        (OrbitCameras([0.0], [0.0]), 12, "at least one novel view"),
        (OrbitCameras([0.0, 0.0], [0.0, 60.0]), 0, "num_frames"),
    ],
)
def test_camera_vector_rejects_bad_inputs(cameras, frames, message):
    with pytest.raises(ValueError, match=message):
        C.camera_vector(cameras, frames)


def test_clip_preprocess_shape_and_constant_image():
    # a constant image stays constant through blur and bicubic; only the normalisation changes it
    image = torch.full((2, 3, 96, 80), 0.5)
    out = C.clip_preprocess(image)
    assert out.shape == (2, 3, 224, 224)
    expected = (torch.tensor([0.75] * 3) - torch.tensor(C.CLIP_MEAN)) / torch.tensor(C.CLIP_STD)
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-6)


def test_clip_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        C.clip_preprocess(torch.zeros(1, 4, 64, 64))


def test_latent_rows_order_and_uncond():
    t, v, d = 3, 4, 6
    embeds = torch.arange(t * d, dtype=torch.float32).view(t, d)
    latents = torch.randn(t, 4, 2, 2)
    refs = torch.randn(v, 4, 2, 2)
    vector = C.camera_vector(ORBIT_4V, t)
    cond, uncond = C.latent_rows(embeds, latents, vector, refs, v)
    for i in range(t * v):
        frame, view = divmod(i, v)
        assert torch.equal(cond["crossattn"][i, 0], embeds[frame])
        assert torch.equal(cond["concat"][i], latents[frame])
        assert torch.equal(cond["cond_view"][i], refs[view])
    assert cond["crossattn"].shape == (t * v, 1, d)
    for key in ("crossattn", "concat", "cond_view"):
        assert not uncond[key].any()
    assert torch.equal(uncond["vector"], C.uncond_vector(vector))


def test_latent_rows_first_chunk_has_zero_reference_views():
    vector = C.camera_vector(ORBIT_4V, 2)
    cond, _ = C.latent_rows(torch.randn(2, 6), torch.randn(2, 4, 2, 2), vector, None, 4)
    assert cond["cond_view"].shape == (8, 4, 2, 2) and not cond["cond_view"].any()


def test_latent_rows_rejects_mismatches():
    vector = C.camera_vector(ORBIT_4V, 2)
    with pytest.raises(ValueError, match="reference views"):
        C.latent_rows(torch.randn(2, 6), torch.randn(2, 4, 2, 2), vector, torch.randn(3, 4, 2, 2), 4)
    with pytest.raises(ValueError, match="camera vector"):
        C.latent_rows(torch.randn(3, 6), torch.randn(3, 4, 2, 2), vector, None, 4)


def test_official_conds_inverts_latent_rows():
    t, v = 3, 4
    embeds, latents, refs = torch.randn(t, 8), torch.randn(t, 4, 2, 2), torch.randn(v, 4, 2, 2)
    vector = C.camera_vector(ORBIT_4V, t)
    cond, _ = C.latent_rows(embeds, latents, vector, refs, v)
    official = C.official_conds(cond, t, v)
    assert torch.equal(official["crossattn"], embeds[None])
    assert torch.equal(official["cond_view"], refs)
    assert torch.equal(official["concat"], cond["concat"]) and torch.equal(official["vector"], vector)


def test_vector_dims_by_clip_width():
    assert C.vector_dims(1024) == C.VECTOR_DIMS and sum(C.vector_dims(1024)) == 1280
    assert sum(C.vector_dims(64)) == 128  # the tiny golden UNet's adm_in_channels
    with pytest.raises(ValueError, match="ViT-H/14"):
        C.vector_dims(768)
