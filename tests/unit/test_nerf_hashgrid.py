"""The pure-torch hash grid reproduces tinycudann's Grid encoding (nerf4d.md §1.3) value for value."""
import math

import pytest
import torch

from sv4d_lib.nerf.hashgrid import (
    PRIMES,
    TorchHashGrid,
    _Gather,
    grid_levels,
    make_encoding,
    tcnn_available,
)

# 2 levels, 1 feature: level 0 has 2³ = 8 vertices in 8 rows (dense), level 1 has 4³ = 64 vertices in 16 rows (hashed)
TINY = {"otype": "HashGrid", "n_levels": 2, "n_features_per_level": 1, "log2_hashmap_size": 4,
        "base_resolution": 2, "per_level_scale": 2.0}


def _tiny_grid() -> TorchHashGrid:
    grid = TorchHashGrid(3, TINY)
    with torch.no_grad():
        grid.params.copy_(torch.arange(grid.params.numel(), dtype=torch.float32))  # row i holds value i
    return grid


def test_level_table_follows_tcnn():
    levels = grid_levels(TINY)
    # scale = 2^(l·log2 b)·N_min − 1, res = ceil(scale) + 1, size = min(next_multiple(res³, 8), 2^log2T)
    assert [(lv.scale, lv.resolution, lv.size, lv.offset, lv.hashed) for lv in levels] == [
        (1.0, 2, 8, 0, False),
        (3.0, 4, 16, 8, True),
    ]
    assert TorchHashGrid(3, TINY).params.numel() == (8 + 16) * 1


def test_hand_computed_values_dense_and_hashed_level():
    x = torch.tensor([[0.25, 0.5, 0.75]])
    out = _tiny_grid()(x)
    # level 0 (dense, res 2): pos = x·1 + 0.5 = (0.75, 1.0, 1.25) → cell (0, 1, 1), frac (0.75, 0, 0.25).
    # Only y-corner 1 has weight (1 − 0). Index = cx + cy·2 + cz·4 mod 8: z-corner 2 equals res and wraps (10 → 2).
    level0 = (0.25 * 0.75) * 6 + (0.75 * 0.75) * 7 + (0.25 * 0.25) * 2 + (0.75 * 0.25) * 3
    # level 1 (hashed, res 4): pos = x·3 + 0.5 = (1.25, 2.0, 2.75) → cell (1, 2, 2), frac (0.25, 0, 0.75);
    # index = (cx·1 ^ cy·2654435761 ^ cz·805459861) mod 2³² mod 16, plus the level offset 8.
    def hashed(cx: int, cy: int, cz: int) -> int:
        return 8 + ((cx * PRIMES[0]) ^ (cy * PRIMES[1]) ^ (cz * PRIMES[2])) % 2**32 % 16

    level1 = (0.75 * 0.25) * hashed(1, 2, 2) + (0.25 * 0.25) * hashed(2, 2, 2) \
        + (0.75 * 0.75) * hashed(1, 2, 3) + (0.25 * 0.75) * hashed(2, 2, 3)
    torch.testing.assert_close(out, torch.tensor([[level0, level1]]))


def test_smoothstep_weights():
    grid = TorchHashGrid(3, {**TINY, "n_levels": 1, "interpolation": "Smoothstep"})
    with torch.no_grad():
        grid.params.copy_(torch.arange(8, dtype=torch.float32))
    # pos = (0.75, 0.5, 0.5) → cell (0, 0, 0), frac (0.75, 0.5, 0.5); smoothstep s(f) = f²(3 − 2f)
    s = lambda f: f * f * (3 - 2 * f)
    expected = sum(
        (s(0.75) if cx else 1 - s(0.75)) * 0.5 * 0.5 * (cx + 2 * cy + 4 * cz)
        for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)
    )
    torch.testing.assert_close(grid(torch.tensor([[0.25, 0.0, 0.0]])), torch.tensor([[expected]]))


def test_gather_backward_is_scatter_add():
    table = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([1, 3, 3, 9, 0])
    assert torch.autograd.gradcheck(_Gather.apply, (table, index))


def test_input_gradient_matches_finite_differences():
    grid = TorchHashGrid(3, {**TINY, "n_features_per_level": 2, "log2_hashmap_size": 6})
    with torch.no_grad():
        grid.params.normal_()
    x = torch.tensor([[0.31, 0.47, 0.62]], requires_grad=True)
    direction = torch.tensor([[0.3, -0.5, 0.8]])
    (grad,) = torch.autograd.grad(grid(x).sum(), x)
    eps = 1e-3  # stays inside one cell of every level, where the encoding is smooth
    numeric = (grid(x + eps * direction).sum() - grid(x - eps * direction).sum()) / (2 * eps)
    torch.testing.assert_close((grad * direction).sum(), numeric.detach(), rtol=1e-2, atol=1e-3)


def test_state_dict_is_one_flat_params_vector():
    grid = TorchHashGrid(3, {"n_levels": 4, "log2_hashmap_size": 10})
    state = grid.state_dict()
    assert list(state) == ["params"]
    levels = grid.levels
    assert state["params"].numel() == (levels[-1].offset + levels[-1].size) * 2
    assert float(state["params"].abs().max()) <= 1e-4  # tcnn's U(−1e-4, 1e-4) init
    other = TorchHashGrid(3, {"n_levels": 4, "log2_hashmap_size": 10}, seed=7)
    other.load_state_dict(state)
    x = torch.rand(16, 3)
    torch.testing.assert_close(other(x), grid(x))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="interpolation"):
        grid_levels({**TINY, "interpolation": "Cubic"})
    with pytest.raises(ValueError, match="otype"):
        grid_levels({"otype": "Frequency"})


def test_make_encoding_falls_back_to_torch_on_cpu():
    encoding = make_encoding(3, TINY, "cpu")
    assert isinstance(encoding, TorchHashGrid)
    assert encoding.n_output_dims == 2


@pytest.mark.skipif(not (torch.cuda.is_available() and tcnn_available()), reason="needs CUDA and tinycudann")
def test_torch_grid_matches_tcnn_on_gpu():
    import tinycudann as tcnn

    config = {"otype": "HashGrid", "n_levels": 8, "log2_hashmap_size": 14, "per_level_scale": math.sqrt(2)}
    reference = tcnn.Encoding(3, config, dtype=torch.float32)
    grid = TorchHashGrid(3, config).cuda()
    grid.load_state_dict({"params": reference.params.detach()})
    x = torch.rand(4096, 3, device="cuda")
    torch.testing.assert_close(grid(x), reference(x).float(), rtol=1e-5, atol=1e-6)
