"""sv4d_lib.sampling with stub networks: the EDM schedule, v-prediction maths, CFG grid and loop mechanics."""
from __future__ import annotations

import math

import pytest
import torch

from sv4d_lib import sampling as S
from sv4d_lib.multiview import frame_major_to_views

T, V, D, ADM = 3, 4, 6, 10


def conds(h: int = 2, concat: torch.Tensor | None = None) -> tuple[dict, dict]:
    n = T * V
    cond = {
        "crossattn": torch.randn(1, T, D),
        "concat": torch.randn(n, 4, h, h) if concat is None else concat,
        "vector": torch.randn(n, ADM),
        "cond_view": torch.randn(V, 4, h, h),
    }
    uncond = {key: torch.zeros_like(value) for key, value in cond.items()}
    return cond, uncond


class ZeroNet:
    def __call__(self, x, timesteps, context, y, cond_view, num_frames, num_views):
        return torch.zeros(x.shape[0], 4, *x.shape[2:])


class ConcatNet:
    """F = the concat channels: D_c = c_skip·x + c_out·concat, D_u = c_skip·x (uncond concat is 0)."""

    def __call__(self, x, timesteps, context, y, cond_view, num_frames, num_views):
        return x[:, 4:].clone()


def test_edm_sigmas_schedule():
    sigmas = S.edm_sigmas(10)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (11,)
    assert sigmas[-1] == 0 and torch.all(sigmas[:-1] > sigmas[1:])
    assert sigmas[0].item() == pytest.approx(700.0, rel=1e-6)
    assert sigmas[-2].item() == pytest.approx(0.002, rel=1e-5)
    # Karras: σ_i^(1/ρ) is linear in i
    inv = sigmas[:-1].double() ** (1 / 7)
    assert torch.allclose(inv[1:] - inv[:-1], (inv[1] - inv[0]).expand(9), rtol=1e-4)


@pytest.mark.parametrize("steps, sigma_min, sigma_max", [(0, 0.002, 700.0), (4, 0.0, 700.0), (4, 5.0, 1.0)])
def test_edm_sigmas_rejects_bad_arguments(steps, sigma_min, sigma_max):
    with pytest.raises(ValueError):
        S.edm_sigmas(steps, sigma_min, sigma_max)


def test_v_scalings_identities():
    sigma = torch.tensor([0.01, 1.0, 700.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = S.v_scalings(sigma)
    assert torch.allclose(c_skip, c_in**2)
    assert torch.allclose(c_out**2 + c_skip, torch.ones(3, dtype=torch.float64))
    assert torch.all(c_out < 0)
    assert torch.allclose(c_noise, 0.25 * sigma.log())


def test_zero_network_follows_the_euler_recursion():
    noise = torch.randn(T * V, 4, 2, 2)
    sigmas = S.edm_sigmas(5)
    cond, uncond = conds()
    out = S.sample_nvvs(ZeroNet(), noise, cond, uncond, sigmas, torch.ones(T, V), T, V)
    # D = c_skip·x, so x ← x + (σ' − σ)·x·σ/(σ² + 1) (float64 reference)
    x = noise.double() * math.sqrt(1 + sigmas[0].item() ** 2)
    for s, s_next in zip(sigmas[:-1].double().tolist(), sigmas[1:].double().tolist()):
        x = x + (s_next - s) * x * s / (s * s + 1)
    assert torch.allclose(out.double(), x, rtol=1e-5, atol=1e-6)


def test_cfg_grid_scales_each_latent_in_t_v_order():
    concat = torch.ones(T * V, 4, 2, 2)
    cond, uncond = conds(concat=concat)
    grid = torch.arange(T * V, dtype=torch.float32).view(T, V) / 4 + 1
    noise = torch.randn(T * V, 4, 2, 2)
    sigma0 = 3.0
    out = S.sample_nvvs(ConcatNet(), noise, cond, uncond, torch.tensor([sigma0, 0.0]), grid, T, V)
    # one step to σ = 0 returns the guided D(x0): c_skip·x0 + s[t, v]·c_out·1
    x0 = noise * math.sqrt(1 + sigma0**2)
    c_skip, c_out = 1 / (sigma0**2 + 1), -sigma0 / math.sqrt(sigma0**2 + 1)
    expected = c_skip * x0 + grid.reshape(-1)[:, None, None, None] * c_out
    assert torch.allclose(out, expected, atol=1e-5)


def test_network_gets_uncond_first_official_shapes():
    seen = {}

    class Recorder(ZeroNet):
        def __call__(self, x, timesteps, context, y, cond_view, num_frames, num_views):
            seen.update(x=x, timesteps=timesteps, context=context, y=y, cond_view=cond_view, T=num_frames, V=num_views)
            return super().__call__(x, timesteps, context, y, cond_view, num_frames, num_views)

    cond, uncond = conds()
    S.sample_nvvs(Recorder(), torch.randn(T * V, 4, 2, 2), cond, uncond, torch.tensor([2.0, 0.0]), torch.ones(T, V), T, V)
    n = T * V
    assert seen["x"].shape == (2 * n, 8, 2, 2) and (seen["T"], seen["V"]) == (T, V)
    assert torch.equal(seen["x"][n:, 4:], cond["concat"]) and not seen["x"][:n, 4:].any()
    assert torch.allclose(seen["timesteps"], torch.full((2 * n,), 0.25 * math.log(2.0)))
    assert torch.equal(seen["context"], torch.cat([uncond["crossattn"], cond["crossattn"]]))
    assert torch.equal(seen["y"][n:], cond["vector"]) and torch.equal(seen["cond_view"][V:], cond["cond_view"])


def test_callback_runs_every_step_and_can_interrupt():
    calls = []
    cond, uncond = conds()
    S.sample_nvvs(ZeroNet(), torch.randn(T * V, 4, 2, 2), cond, uncond, S.edm_sigmas(3), torch.ones(T, V), T, V,
                  callback=lambda i, x, den: calls.append(i))
    assert calls == [0, 1, 2]

    def stop(i, x, den):
        raise InterruptedError

    with pytest.raises(InterruptedError):
        S.sample_nvvs(ZeroNet(), torch.randn(T * V, 4, 2, 2), cond, uncond, S.edm_sigmas(3), torch.ones(T, V), T, V,
                      callback=stop)


def test_sample_nvvs_rejects_bad_shapes():
    cond, uncond = conds()
    noise = torch.randn(T * V, 4, 2, 2)
    with pytest.raises(ValueError, match="noise"):
        S.sample_nvvs(ZeroNet(), noise[:5], cond, uncond, S.edm_sigmas(2), torch.ones(T, V), T, V)
    with pytest.raises(ValueError, match="cfg_grid"):
        S.sample_nvvs(ZeroNet(), noise, cond, uncond, S.edm_sigmas(2), torch.ones(V, T), T, V)
    with pytest.raises(ValueError, match="cond_view"):
        bad = dict(cond, cond_view=torch.zeros(T * V, 4, 2, 2))
        S.sample_nvvs(ZeroNet(), noise, bad, uncond, S.edm_sigmas(2), torch.ones(T, V), T, V)
    with pytest.raises(ValueError, match="lacks"):
        S.sample_nvvs(ZeroNet(), noise, {"concat": cond["concat"]}, uncond, S.edm_sigmas(2), torch.ones(T, V), T, V)


def test_decode_by_view_chunks_per_view():
    batches = []

    def decode(z):
        batches.append(z.shape[0])
        return z * 2

    latents = torch.randn(T * V, 4, 2, 2)
    out = S.decode_by_view(decode, latents, V, decoding_t=2)
    assert torch.equal(out, frame_major_to_views(latents, V) * 2)
    assert batches == [2, 1] * V
    with pytest.raises(ValueError):
        S.decode_by_view(decode, latents, V, decoding_t=0)
