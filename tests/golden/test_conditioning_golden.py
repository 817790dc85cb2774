"""Parity of the camera vector and CLIP preprocessing with the official code (golden fixtures)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sv4d_lib import conditioning as C
from sv4d_lib.cameras import OrbitCameras

CASES = ("4v_default", "8v_default", "4v_custom")


@pytest.fixture(scope="module")
def cameras(golden_dir):
    path = golden_dir / "camera_vectors.safetensors"
    with safe_open(str(path), "pt") as f:
        cases = json.loads(f.metadata()["json"])["cases"]
    return cases, load_file(str(path))


@pytest.mark.parametrize("case", CASES)
def test_relative_angles_match_official(cameras, case):
    cases, tensors = cameras
    spec = cases[case]
    polar, azimuth = C.relative_angles(OrbitCameras(spec["elevations_deg"], spec["azimuths_deg"]), spec["T"])
    assert torch.equal(polar, tensors[f"{case}.polar_rad"])
    assert torch.equal(azimuth, tensors[f"{case}.azimuth_rad"])


@pytest.mark.parametrize("case", CASES)
def test_camera_vector_matches_official(cameras, case):
    cases, tensors = cameras
    spec = cases[case]
    args = OrbitCameras(spec["elevations_deg"], spec["azimuths_deg"]), spec["T"]
    assert torch.equal(C.camera_vector(*args), tensors[f"{case}.vector_c"])
    assert torch.equal(C.camera_vector_uc(*args), tensors[f"{case}.vector_uc"])


def test_clip_preprocess_matches_official(golden_dir):
    data = load_file(str(golden_dir / "clip_preprocess.safetensors"))
    image = data["image_u8"].to(torch.float32).div(255) * 2 - 1
    assert torch.equal(C.clip_preprocess(image), data["expected_preprocessed"])


def test_tiny_vector_layout_matches_sampler_fixture(golden_dir):
    """The sampler fixture's tiny vector ([32 | 48 | 48]) comes from the same embedder code."""
    data = load_file(str(golden_dir / "sampler_4v_T3V4_16.safetensors"))
    vector = C.camera_vector(OrbitCameras.preset("4v"), 3, dims=(32, 48, 48))
    assert torch.equal(vector, data["c.vector"])
    assert torch.equal(C.uncond_vector(vector, 32), data["uc.vector"])
