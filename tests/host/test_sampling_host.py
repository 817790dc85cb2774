"""Sampling inside real ComfyUI with the tiny engine file (golden tiny UNet and VAE).

* Parity: the official sampler fixture through ComfyUI's own path — SV4D2 Load Model → SV4D2 CFG Grid (GridGuider)
  → core SamplerCustomAdvanced with euler and KarrasScheduler (= the EDM sigmas), the fixture's noise injected.
* SV4D2 Sample NVVS end to end: its latents equal the reference loop `sample_nvvs` on the same noise and
  conditioning, its images follow the multi-view layout, and bad inputs fail with clear errors.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sv4d_lib import conditioning, guidance, multiview, sampling
from sv4d_lib.cameras import OrbitCameras

from . import nvvs_fixtures as fx
from .inprocess import NodeFailed

T, V, SIZE, STEPS, SEED = 12, 4, 64, 2, 7
CAMERAS = OrbitCameras.preset("4v")  # what the prompts' SV4D2 Cameras node outputs
LATENT_SCALE = 0.18215  # ComfyUI's LATENT is the sampler's x / 0.18215 (SD1.x latent format)


host = fx.nvvs_host


def loader() -> dict:
    return {"class_type": "SV4D2LoadModel",
            "inputs": {"ckpt_name": fx.CKPT_NAME, "variant": "auto", "precision": "fp32", "download": False}}


def test_official_fixture_through_comfy_sampler_custom_advanced(host, golden_dir):
    prompt = {
        "1": loader(),
        "2": {"class_type": fx.FIXTURE_NODE, "inputs": {}},
        "3": {"class_type": "SV4D2CFGGrid", "inputs": {"model": ["1", 0], "positive": ["2", 1],
                                                       "negative": ["2", 2], "grid": guidance.DEFAULT_GRID_SPEC}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "KarrasScheduler", "inputs": {"steps": 4, "sigma_max": 700.0, "sigma_min": 0.002,
                                                          "rho": 7.0}},
        "6": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["2", 0], "guider": ["3", 0],
                                                                "sampler": ["4", 0], "sigmas": ["5", 0],
                                                                "latent_image": ["2", 3]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }
    result = host.run(prompt)
    fixture = load_file(str(golden_dir / "sampler_4v_T3V4_16.safetensors"))
    assert torch.equal(result.outputs["5"][0], fixture["sigmas"])
    assert torch.equal(result.outputs["3"][0].scales.cpu(), fixture["cfg_scale"].view(3, 4))
    samples = result.outputs["6"][0]["samples"]
    assert (samples * LATENT_SCALE - fixture["expected_output"]).abs().max() <= 1e-4


def nvvs_prompt(count: int = T, preset: str = "4v", with_frames: bool = True, steps: int = STEPS) -> dict:
    prompt = {
        "1": loader(),
        "2": {"class_type": fx.FRAMES_NODE, "inputs": {"count": count, "size": SIZE, "height": 0, "seed": 3}},
        "3": {"class_type": "SV4D2Cameras", "inputs": {"preset": preset, "elevation_deg": 0.0,
                                                      "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 1]}'}},
        "4": {"class_type": "SV4D2EncodeVideo",
              "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0], "cameras": ["3", 0]}},
        "5": {"class_type": "SV4D2SampleNVVS",
              "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["4", 1], "cameras": ["3", 0],
                         "vae": ["1", 2], "steps": steps, "seed": SEED, "grid": guidance.DEFAULT_GRID_SPEC,
                         "decoding_t": 5}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 2]}},
    }
    if with_frames:
        prompt["5"]["inputs"]["frames"] = ["2", 0]
    return prompt


@pytest.fixture(scope="module")
def nvvs_run(host):
    return host.run(nvvs_prompt())


@torch.inference_mode()
def test_sample_nvvs_equals_the_reference_loop(nvvs_run, golden_dir):
    import comfy.sample

    positive, negative, latent = nvvs_run.outputs["4"]
    rows = {}
    for name, conds in (("cond", positive), ("uncond", negative)):
        cross, extra = conds[0]
        rows[name] = conditioning.official_conds({
            "crossattn": cross, "concat": extra["concat_latent_image"], "vector": extra["sv4d2_vector"],
            "cond_view": extra["sv4d2_cond_view"],
        }, T, V)
    noise = comfy.sample.prepare_noise(latent["samples"], SEED)
    grid = guidance.cfg_grid("official_4v", T, V)
    expected = sampling.sample_nvvs(fx.golden_unet(golden_dir), noise, rows["cond"], rows["uncond"],
                                    sampling.edm_sigmas(STEPS), grid, T, V)
    samples = nvvs_run.outputs["5"][0]["samples"]
    assert samples.shape == (T * V, 4, SIZE // 8, SIZE // 8)
    assert (samples * LATENT_SCALE - expected).abs().max() <= 1e-4 * max(1.0, expected.abs().max().item())


@torch.inference_mode()
def test_sample_nvvs_images_follow_the_multiview_layout(nvvs_run):
    vae, frames = nvvs_run.outputs["1"][2], nvvs_run.outputs["2"][0]
    latents, images, grid = nvvs_run.outputs["5"]
    assert images.shape == ((V + 1) * T, SIZE, SIZE, 3) and 0 <= images.min() and images.max() <= 1
    videos = multiview.split_views(images, CAMERAS)
    assert torch.equal(videos[0], frames)  # view 0 = the prepared input frames
    view2 = multiview.frame_major_to_views(latents["samples"], V)[1]
    assert torch.allclose(videos[2], vae.decode(view2), atol=1e-5)  # novel view 2 = camera entry 2
    assert grid.shape == (1, (V + 1) * SIZE, T * SIZE, 3)
    assert torch.equal(grid[0, SIZE:2 * SIZE, 3 * SIZE:4 * SIZE], videos[1, 3])  # row = view, column = frame
    assert nvvs_run.ui["6"]["images"]


@torch.inference_mode()
def test_without_frames_view0_is_the_vae_reconstruction(host):
    result = host.run(nvvs_prompt(with_frames=False, steps=1))
    vae = result.outputs["1"][2]
    concat = result.outputs["4"][0][0][1]["concat_latent_image"]
    images = result.outputs["5"][1]
    assert images.shape == ((V + 1) * T, SIZE, SIZE, 3)
    assert torch.allclose(images[:T], vae.decode(concat[::V]), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 5}, "the model samples 12 frames per window"),
        ({"preset": "8v"}, "the model samples 4 novel views"),
    ],
)
def test_layout_mismatches_are_clear_errors(host, kwargs, message):
    with pytest.raises(NodeFailed, match=message):
        host.run(nvvs_prompt(**kwargs))


def test_bad_grid_fails_validation(host):
    prompt = nvvs_prompt()
    prompt["5"]["inputs"]["grid"] = json.dumps({"preset": "nope"})
    ok, _, node_errors = host.validate(prompt)
    assert not ok and "unknown CFG grid preset" in json.dumps(node_errors)


def test_interrupt_stops_within_one_step(host, monkeypatch):
    import comfy.model_management
    import latent_preview

    previews = []

    def prepare_callback(model, steps, x0_output_dict=None):
        def preview(step, x0, x, total_steps):
            previews.append(step)
            comfy.model_management.interrupt_current_processing(True)  # "cancel" pressed during step 0

        return preview

    monkeypatch.setattr(latent_preview, "prepare_callback", prepare_callback)
    with pytest.raises(NodeFailed, match="execution_interrupted"):
        host.run(nvvs_prompt(steps=5))
    assert previews == [0]
    comfy.model_management.interrupt_current_processing(False)


def test_schema(host):
    info = host.nodes.NODE_CLASS_MAPPINGS["SV4D2SampleNVVS"].GET_NODE_INFO_V1()
    required = info["input"]["required"]
    assert list(required) == ["model", "positive", "negative", "cameras", "vae", "steps", "seed", "grid",
                              "decoding_t"]
    assert list(info["input"]["optional"]) == ["frames"]
    assert required["grid"][0] == "STRING" and required["grid"][1]["widgetType"] == "SV4D2_CFG_GRID"
    assert required["steps"][1]["default"] == 50 and required["decoding_t"][1]["default"] == 4
    assert info["output"] == ["LATENT", "IMAGE", "IMAGE"]
    for name, value in {**required, **info["input"]["optional"]}.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"
