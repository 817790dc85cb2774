"""Noise-and-denoise strength → start step in the sampler's own EDM schedule."""
from __future__ import annotations

import itertools

import pytest
import torch

from sv4d_lib.sampling import edm_sigmas
from sv4d_lib.extend import refine_sigmas, refine_start_step


@pytest.mark.parametrize("steps", [1, 4, 7, 50])
def test_strength_limits(steps):
    sigmas = edm_sigmas(steps)
    assert refine_start_step(0.0, steps) == steps
    assert refine_sigmas(sigmas, 0.0).tolist() == [0.0]  # no step: the clean latent comes back
    assert refine_start_step(1.0, steps) == 0
    assert torch.equal(refine_sigmas(sigmas, 1.0), sigmas)  # the whole schedule from σ_max


@pytest.mark.parametrize("steps", [3, 10, 50])
def test_strength_is_the_fraction_of_steps_run(steps):
    strengths = torch.linspace(0, 1, 101).tolist()
    starts = [refine_start_step(s, steps) for s in strengths]
    assert all(a >= b for a, b in itertools.pairwise(starts))  # more strength, earlier start
    for s, start in zip(strengths, starts):
        assert abs((steps - start) - s * steps) <= 0.5  # nearest whole number of steps
    sigmas = edm_sigmas(steps)
    for s, start in zip(strengths, starts):
        tail = refine_sigmas(sigmas, s)
        assert torch.equal(tail, sigmas[start:])  # the same schedule, entered later
        assert tail.shape[0] - 1 == steps - start


def test_float_products_land_on_the_intended_step():
    # 0.58·50 = 28.999999999999996 in floating point; it still means 29 steps.
    assert refine_start_step(0.58, 50) == 21


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_strength_outside_unit_interval_is_rejected(strength):
    with pytest.raises(ValueError, match="strength must lie in"):
        refine_start_step(strength, 50)


def test_bad_steps_and_schedule_are_rejected():
    with pytest.raises(ValueError, match="steps must be"):
        refine_start_step(0.5, 0)
    with pytest.raises(ValueError, match="1-D schedule"):
        refine_sigmas(torch.zeros(1), 0.5)
