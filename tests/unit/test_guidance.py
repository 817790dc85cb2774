"""CFG grids: preset rules from first principles, artist ramps, spec parsing and the per-latent combine."""
from __future__ import annotations

import json
import math

import pytest
import torch

from sv4d_lib.cameras import AZIMUTHS_4V, AZIMUTHS_8V, OrbitCameras
from sv4d_lib.guidance import (
    DEFAULT_GRID_SPEC,
    EASINGS,
    PRESETS,
    apply_cfg_grid,
    cfg_grid,
    grid_from_spec,
    parse_grid_spec,
    ramp_profiles,
    view_distance,
)


def spec(**fields) -> str:
    return json.dumps(fields)


def orbit(*azimuths: float) -> OrbitCameras:
    """Cameras at these azimuths (input view first) on the equator: only azimuths shape the ramp."""
    return OrbitCameras((0.0,) * len(azimuths), azimuths)


def test_official_4v_is_a_linear_ramp_over_the_flattened_frame_view_order():
    grid = cfg_grid("official_4v", 12, 4)
    assert grid.shape == (12, 4) and grid.dtype == torch.float32
    expected = torch.tensor([[1 + (4 * t + v) / 47 for v in range(4)] for t in range(12)])
    torch.testing.assert_close(grid, expected, rtol=0, atol=1e-6)


def test_official_4v_params_move_both_ends():
    grid = cfg_grid("official_4v", 3, 4, min=2.0, max=7.5)
    assert grid[0, 0].item() == 2.0 and grid[-1, -1].item() == 7.5


def test_official_8v_rises_with_time_and_view_distance_and_tops_out_below_max():
    grid = cfg_grid("official_8v", 5, 8)
    tri = [2 * abs(u - math.floor(u + 0.5)) for u in (v / 7 for v in range(8))]
    expected = torch.tensor([[1.5 + 0.5 * t / 4 + 0.5 * tri[v] for v in range(8)] for t in range(5)])
    torch.testing.assert_close(grid, expected, rtol=0, atol=1e-6)
    assert grid.max().item() == pytest.approx(1.5 + 0.5 + 0.5 * 6 / 7, abs=1e-6)  # 2.4286, not 2.5


def test_single_frame_and_single_view_grids_stay_at_min():
    assert cfg_grid("official_8v", 1, 1).item() == 1.5
    assert cfg_grid("official_4v", 1, 1).item() == 1.0
    assert cfg_grid("ramp", 1, 1, min=3.0).item() == 3.0


def test_view_distance_from_camera_azimuths_is_the_angle_to_the_input_view():
    torch.testing.assert_close(view_distance(4, orbit(*AZIMUTHS_4V)), torch.tensor([60, 120, 180, 120]) / 180.0)
    # relative to an input view at 350°: 10° → 20° away, 170° → opposite
    torch.testing.assert_close(view_distance(2, orbit(350.0, 10.0, 170.0)), torch.tensor([20 / 180, 1.0]))


def test_view_distance_without_cameras_follows_the_8v_script():
    distance = view_distance(8)
    assert distance[0].item() == 0 and distance[-1].item() == 0
    torch.testing.assert_close(distance, distance.flip(0))
    assert distance.max().item() == pytest.approx(6 / 7)


def test_ramp_corners_are_its_min_and_maxima():
    grid = cfg_grid("ramp", 6, 4, cameras=orbit(*AZIMUTHS_4V), min=1.0, time_max=3.0, view_max=5.0)
    opposite = 2  # the view at 180°
    assert grid[0, opposite].item() == pytest.approx(5.0)
    assert grid[-1, opposite].item() == pytest.approx(1.0 + 2.0 + 4.0)
    # no view sits at the input view, so the first frame of the nearest view (60°) is min + 4·(1/3)
    assert grid[0, 0].item() == pytest.approx(1.0 + 4.0 / 3)
    assert grid[-1, 0].item() - grid[0, 0].item() == pytest.approx(2.0)


def test_ramp_with_default_params_and_no_cameras_matches_official_8v():
    torch.testing.assert_close(cfg_grid("ramp", 5, 8), cfg_grid("official_8v", 5, 8), rtol=0, atol=1e-6)


@pytest.mark.parametrize("easing,mid", [("linear", 0.5), ("ease_in", 0.25), ("ease_out", 0.75), ("ease_in_out", 0.5)])
def test_time_easing_shapes_the_middle_frame(easing, mid):
    grid = cfg_grid("ramp", 3, 1, min=1.0, time_max=3.0, view_max=1.0, time_easing=easing)
    assert grid[:, 0].tolist() == pytest.approx([1.0, 1.0 + 2.0 * mid, 3.0])


def test_easings_are_monotone_maps_of_the_unit_interval():
    u = torch.linspace(0, 1, 101)
    for name, ease in EASINGS.items():
        values = ease(u)
        assert values[0].item() == 0 and values[-1].item() == pytest.approx(1.0), name
        assert (values.diff() >= 0).all(), name


def test_view_easing_uses_the_view_distance():
    grid = cfg_grid("ramp", 1, 4, cameras=orbit(0, 90, 180, 270, 0), min=0.0, time_max=0.0, view_max=4.0,
                    view_easing="ease_in")
    assert grid[0].tolist() == pytest.approx([4 * 0.25, 4 * 1.0, 4 * 0.25, 0.0])


def test_default_spec_is_the_official_4v_grid():
    parsed = parse_grid_spec(DEFAULT_GRID_SPEC)
    assert parsed == {"preset": "official_4v", "params": PRESETS["official_4v"], "overrides": {}, "shape": None}
    assert torch.equal(grid_from_spec(parsed, 12, 4), cfg_grid("official_4v", 12, 4))


def test_overrides_replace_single_cells():
    parsed = parse_grid_spec(spec(preset="official_8v", overrides={"0,1": 7.0, " 4 , 7 ": 0.0}))
    grid = grid_from_spec(parsed, 5, 8)
    reference = cfg_grid("official_8v", 5, 8)
    assert grid[0, 1].item() == 7.0 and grid[4, 7].item() == 0.0
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[0, 1] = mask[4, 7] = False
    assert torch.equal(grid[mask], reference[mask])


def test_shape_must_match_the_model():
    parsed = parse_grid_spec(spec(preset="ramp", shape=[12, 4]))
    assert grid_from_spec(parsed, 12, 4).shape == (12, 4)
    with pytest.raises(ValueError, match=r"drawn for 12 frames × 4 views but the model samples 5 frames × 8 views"):
        grid_from_spec(parsed, 5, 8)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (spec(preset="official_4v", scale=2), r"unknown CFG grid keys \['scale'\]"),
        (spec(preset="linear"), "unknown CFG grid preset 'linear'"),
        (spec(), "unknown CFG grid preset None"),
        (spec(preset="ramp", params=[1, 2]), "'params' must be a JSON object"),
        (spec(preset="official_4v", params={"mid": 1}), r"has no params \['mid'\]"),
        (spec(preset="official_4v", params={"max": "2"}), "'max' must be a number"),
        (spec(preset="official_4v", params={"max": True}), "'max' must be a number"),
        ('{"preset": "official_4v", "params": {"max": NaN}}', "'max' must be a number"),
        (spec(preset="official_4v", params={"max": 31}), r"outside \[0, 30\]"),
        (spec(preset="official_8v", params={"min": -1}), r"outside \[0, 30\]"),
        (spec(preset="ramp", params={"time_easing": "bounce"}), "is not an easing"),
        (spec(preset="ramp", overrides=[[0, 0, 2.0]]), "'overrides' must be a JSON object"),
        (spec(preset="ramp", overrides={"0;1": 2.0}), 'is not "t,v"'),
        (spec(preset="ramp", overrides={"-1,1": 2.0}), 'is not "t,v"'),
        (spec(preset="ramp", overrides={"0,1": "high"}), "override '0,1' must be a number"),
        (spec(preset="ramp", overrides={"0,1": 40}), r"outside \[0, 30\]"),
        (spec(preset="ramp", overrides={"0,1": 2, "0, 1": 3}), "repeats cell"),
        (spec(preset="ramp", shape=[12]), r"'shape' must be \[num_frames, num_views\]"),
        (spec(preset="ramp", shape=[0, 4]), r"'shape' must be \[num_frames, num_views\]"),
    ],
)
def test_bad_specs_are_refused_with_the_problem_and_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        parse_grid_spec(text)


def test_grid_level_errors_name_the_fix():
    with pytest.raises(ValueError, match="outside the 5 frames × 8 views grid"):
        grid_from_spec(parse_grid_spec(spec(preset="official_8v", overrides={"5,0": 2.0})), 5, 8)
    with pytest.raises(ValueError, match=r"the ramp reaches scales 30\.\.40 at its corners.*closer to min"):
        cfg_grid("ramp", 2, 8, cameras=orbit(*AZIMUTHS_8V[:1], *(180.0,) * 8), min=20, time_max=30, view_max=30)
    with pytest.raises(ValueError, match="the CFG grid .* has 5 views but the cameras have 9"):
        cfg_grid("ramp", 2, 4, cameras=orbit(*AZIMUTHS_8V))
    with pytest.raises(ValueError, match="num_frames >= 1"):
        cfg_grid("official_4v", 0, 4)
    with pytest.raises(ValueError, match="unknown CFG grid preset"):
        cfg_grid("official_12v", 2, 4)


def test_apply_cfg_grid_scales_each_latent_in_batch_frame_view_order():
    grid = cfg_grid("official_8v", 2, 3)
    cond = torch.randn(2 * 6, 4, 3, 3)
    uncond = torch.randn_like(cond)
    out = apply_cfg_grid(cond, uncond, grid)
    flat = grid.flatten()
    for b in range(2):
        for t in range(2):
            for v in range(3):
                i = b * 6 + t * 3 + v
                expected = uncond[i] + (cond[i] - uncond[i]) * flat[t * 3 + v]
                torch.testing.assert_close(out[i], expected)


def test_apply_cfg_grid_keeps_dtype_and_refuses_a_foreign_batch():
    grid = cfg_grid("official_4v", 3, 4)
    cond = torch.ones(12, 4, 2, 2, dtype=torch.float16)
    out = apply_cfg_grid(cond, torch.zeros_like(cond), grid)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out[:, 0, 0, 0], grid.flatten().half())
    with pytest.raises(ValueError, match="do not split into batches"):
        apply_cfg_grid(torch.ones(10, 4, 2, 2), torch.zeros(10, 4, 2, 2), grid)


def test_ramp_profiles_are_the_grid_edges_the_editor_draws():
    params = {"min": 1.0, "time_max": 4.0, "view_max": 2.0, "time_easing": "ease_out", "view_easing": "ease_in"}
    along_time, along_view = ramp_profiles(params, 5, samples=3)
    grid = cfg_grid("ramp", 5, 2, cameras=orbit(0.0, 0.0, 180.0), **params)
    torch.testing.assert_close(along_time, grid[:, 0])  # the view at the input view's azimuth has δ = 0
    assert along_view.tolist() == pytest.approx([1.0, 1.25, 2.0])
    assert grid[0, 1].item() == pytest.approx(2.0)


def test_a_ramp_falling_below_zero_is_refused():
    with pytest.raises(ValueError, match=r"reaches scales -30\.\.0 at its corners"):
        cfg_grid("ramp", 2, 1, cameras=orbit(0.0, 180.0), min=30, time_max=0, view_max=0)


def test_an_official_preset_refuses_the_other_models_view_count():
    with pytest.raises(ValueError, match="official grid of the 4-view model, but this model samples 8 views; choose the preset 'official_8v'"):
        grid_from_spec(parse_grid_spec(spec(preset="official_4v")), 5, 8)
    with pytest.raises(ValueError, match="choose the preset 'official_4v'"):
        grid_from_spec(parse_grid_spec(spec(preset="official_8v")), 12, 4)
