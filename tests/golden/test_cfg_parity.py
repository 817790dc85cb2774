"""The official CFG grids, bit for bit: `cfg_scales.json` and the scale of the tiny 4-view sampler case."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sv4d_lib.guidance import DEFAULT_GRID_SPEC, cfg_grid, grid_from_spec, parse_grid_spec

CASES = {"4v": "official_4v", "8v": "official_8v", "4v_tiny_T3V4": "official_4v"}


@pytest.fixture(scope="module")
def golden_grids(golden_dir):
    return json.loads((golden_dir / "cfg_scales.json").read_text())["grids"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_presets_reproduce_the_official_grids_exactly(golden_grids, case):
    entry = golden_grids[case]
    params = entry["guider_config"]["params"]
    expected = torch.tensor(entry["scale_tv"], dtype=torch.float32)
    grid = cfg_grid(CASES[case], entry["T"], entry["V"], max=params["max_scale"], min=params.get("min_scale", 1.0))
    assert torch.equal(grid, expected)
    assert torch.equal(grid.flatten(), torch.tensor(entry["scale_flat"], dtype=torch.float32))


@pytest.mark.parametrize("case", sorted(CASES))
def test_preset_defaults_are_the_scripts_options(golden_grids, case):
    entry = golden_grids[case]
    spec = parse_grid_spec(json.dumps({"preset": CASES[case]}))
    assert torch.equal(grid_from_spec(spec, entry["T"], entry["V"]), torch.tensor(entry["scale_tv"]))


def test_default_spec_is_the_sampler_fixtures_scale(golden_dir):
    case = load_file(str(golden_dir / "sampler_4v_T3V4_16.safetensors"))
    assert torch.equal(grid_from_spec(parse_grid_spec(DEFAULT_GRID_SPEC), 3, 4).flatten(), case["cfg_scale"])
