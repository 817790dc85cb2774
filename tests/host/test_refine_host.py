"""SV4D2 Refine in real ComfyUI with the tiny 8-view engine (T = 5 frames × V = 8 views), one window.

Limits: strength 0 is the VAE round trip, strength 1 is SV4D2 Sample NVVS with the same seed. In between, the
node equals the core-node recipe written below as an API prompt (the example workflow): VAEEncode → AddNoise
(RandomNoise, the low half of SplitSigmas) → SamplerCustomAdvanced (DisableNoise, the SV4D2 CFG Grid guider,
euler) → VAEDecode. BasicScheduler "karras" reads the model's σ range (0.002-700, ρ 7) and gives exactly the
official EDM sigmas.
"""
from __future__ import annotations

import json

import pytest
import torch

from sv4d_lib import extend, multiview, sampling
from sv4d_lib.cameras import OrbitCameras

from . import nvvs_fixtures as fx
from . import window_fixtures as wf
from .inprocess import NodeFailed

T, V, SIZE, STEPS, SEED = 5, 8, 64, 2, 3
CAMERAS = OrbitCameras.preset("8v")  # what the prompts' SV4D2 Cameras node outputs
GRID = json.dumps({"preset": "official_8v"})
STRENGTH = 0.5


@pytest.fixture(scope="module")
def host(comfy_host, golden_dir):
    yield from wf.tiny_8v_host(comfy_host, golden_dir)


def base_prompt(ckpt: str, preset: str = "8v", source_views: int = V, source_frames: int = T) -> dict:
    """Loader, frames, cameras and a random multi-view source video (node 4: view-major, frame-major)."""
    prompt = {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": ckpt, "variant": "auto", "precision": "fp32", "download": False}},
        "2": {"class_type": fx.FRAMES_NODE, "inputs": {"count": T, "size": SIZE, "height": 0, "seed": 8}},
        "3": {"class_type": "SV4D2Cameras", "inputs": {"preset": preset, "elevation_deg": 0.0,
                                                      "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 1]}'}},
        "4": {"class_type": wf.MULTIVIEW_NODE, "inputs": {"frames": ["9", 0], "num_views": source_views, "seed": 9}},
        "9": {"class_type": fx.FRAMES_NODE, "inputs": {"count": source_frames, "size": SIZE, "height": 0, "seed": 8}},
    }
    return prompt


def refine_node(strength: float, source: list, model: list | None = None) -> dict:
    return {"class_type": "SV4D2Refine",
            "inputs": {"model": model or ["1", 0], "clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0],
                       "cameras": ["3", 0], "multiview": source, "strength": strength, "steps": STEPS, "seed": SEED,
                       "grid": GRID, "decoding_t": 2, "crossfade": False, "pad_frames": False}}


def core_refinement(start_step: int) -> dict:
    """The example: the same refinement from core nodes and the pack's conditioning + guider (nodes 20-29)."""
    return {
        "20": {"class_type": "SV4D2EncodeVideo", "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2],
                                                           "frames": ["2", 0], "cameras": ["3", 0]}},
        "21": {"class_type": "SV4D2CFGGrid", "inputs": {"model": ["1", 0], "positive": ["20", 0],
                                                       "negative": ["20", 1], "grid": GRID, "cameras": ["3", 0]}},
        "22": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 1], "vae": ["1", 2]}},
        "23": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "karras", "steps": STEPS,
                                                          "denoise": 1.0}},
        "24": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["23", 0], "step": start_step}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "26": {"class_type": "AddNoise", "inputs": {"model": ["1", 0], "noise": ["25", 0], "sigmas": ["24", 1],
                                                    "latent_image": ["22", 0]}},
        "27": {"class_type": "DisableNoise", "inputs": {}},
        "28": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "29": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["27", 0], "guider": ["21", 0],
                                                                 "sampler": ["28", 0], "sigmas": ["24", 1],
                                                                 "latent_image": ["26", 0]}},
        "30": {"class_type": "VAEDecode", "inputs": {"samples": ["29", 0], "vae": ["1", 2]}},
    }


@pytest.fixture(scope="module")
def limits_run(host):
    """One prompt: Sample NVVS, Refine at strength 1 / 0 / STRENGTH, and the core-node example."""
    comfy_host, ckpt = host
    prompt = base_prompt(ckpt)
    prompt["5"] = {"class_type": "SV4D2EncodeVideo", "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2],
                                                               "frames": ["2", 0], "cameras": ["3", 0]}}
    prompt["7"] = {"class_type": wf.RECORD_NODE, "inputs": {"model": ["1", 0], "tag": "nvvs"}}
    prompt["8"] = {"class_type": wf.RECORD_NODE, "inputs": {"model": ["1", 0], "tag": "refine"}}
    prompt["6"] = {"class_type": "SV4D2SampleNVVS",
                   "inputs": {"model": ["7", 0], "positive": ["5", 0], "negative": ["5", 1], "cameras": ["3", 0],
                              "vae": ["1", 2], "steps": STEPS, "seed": SEED, "grid": GRID, "decoding_t": 2,
                              "frames": ["2", 0]}}
    prompt["10"] = refine_node(1.0, ["4", 0], model=["8", 0])
    prompt["11"] = refine_node(0.0, ["4", 0])
    prompt["12"] = refine_node(STRENGTH, ["4", 0])
    prompt.update(core_refinement(extend.refine_start_step(STRENGTH, STEPS)))
    prompt["40"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    prompt["41"] = {"class_type": "PreviewImage", "inputs": {"images": ["30", 0]}}
    prompt["42"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
    prompt["43"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    prompt["44"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 1]}}
    wf.RecordModelNode.records = {}
    return comfy_host.run(prompt)


@torch.inference_mode()
def test_strength_one_is_sampling_from_noise(limits_run):
    nvvs_steps = wf.window_steps(wf.RecordModelNode.records["nvvs"], STEPS)
    refine_steps = wf.window_steps(wf.RecordModelNode.records["refine"], STEPS)
    assert len(nvvs_steps) == len(refine_steps) == 1
    assert torch.equal(nvvs_steps[0][0]["cond"]["x"], refine_steps[0][0]["cond"]["x"])  # the same pure noise
    for a, b in zip(nvvs_steps[0], refine_steps[0]):
        for branch in ("cond", "uncond"):
            assert torch.equal(a[branch]["sigma"], b[branch]["sigma"])  # the whole schedule
            assert torch.equal(a[branch]["cond_view"], b[branch]["cond_view"])
    first_nvvs, first_refine = nvvs_steps[0][0], refine_steps[0][0]
    for branch in ("cond", "uncond"):
        assert (first_nvvs[branch]["denoised"] - first_refine[branch]["denoised"]).abs().max() <= 1e-5
    nvvs = limits_run.outputs["6"][1]
    refined, report = limits_run.outputs["10"]
    assert refined.shape == nvvs.shape == ((V + 1) * T, SIZE, SIZE, 3)
    assert (refined - nvvs).abs().max() <= wf.IMAGE_ATOL
    assert "the last 2 of 2 steps" in report


@torch.inference_mode()
def test_strength_zero_is_the_vae_round_trip(limits_run):
    vae = limits_run.outputs["1"][2]
    source = multiview.split_views(limits_run.outputs["4"][0], CAMERAS)
    refined, report = limits_run.outputs["11"]
    videos = multiview.split_views(refined, CAMERAS)
    assert torch.equal(videos[0], source[0])  # the input view is passed through
    for v in range(1, V + 1):
        expected = vae.decode(vae.encode(source[v]))
        assert (videos[v] - expected).abs().max() <= 1e-4
    assert (videos[1:] - source[1:]).abs().max() > 1e-2  # the tiny VAE is far from lossless: a real round trip
    assert "VAE round trip" in report


@torch.inference_mode()
def test_refine_equals_the_core_node_recipe(limits_run):
    assert torch.equal(limits_run.outputs["23"][0], sampling.edm_sigmas(STEPS))
    source = multiview.split_views(limits_run.outputs["4"][0], CAMERAS)
    refined = multiview.split_views(limits_run.outputs["12"][0], CAMERAS)
    core = multiview.frame_major_to_views(limits_run.outputs["30"][0], V)  # VAEDecode keeps the latent order
    assert torch.equal(refined[0], source[0])
    assert (refined[1:] - core).abs().max() <= 1e-4
    # Neither the input nor its round trip: the pass really denoised.
    assert (refined[1:] - multiview.split_views(limits_run.outputs["11"][0], CAMERAS)[1:]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source_views": 4}, r"a multi-view video of 9 views .* needs a batch that is a multiple of 9, got 25"),
        ({"source_frames": T + 1}, r"the multi-view video has 6 frames .* there are 5 input frames"),
    ],
)
def test_inputs_that_do_not_match_the_cameras_or_frames_fail_before_sampling(host, kwargs, message):
    comfy_host, ckpt = host
    prompt = base_prompt(ckpt, **kwargs)
    prompt["5"] = {"class_type": wf.RECORD_NODE, "inputs": {"model": ["1", 0], "tag": "model"}}
    prompt["10"] = refine_node(STRENGTH, ["4", 0], model=["5", 0])
    prompt["11"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
    wf.RecordModelNode.records = {}
    with pytest.raises(NodeFailed, match=message):
        comfy_host.run(prompt)
    assert not wf.RecordModelNode.records.get("model")


def test_camera_count_must_match_the_model(host):
    comfy_host, ckpt = host
    prompt = base_prompt(ckpt, preset="4v", source_views=4)
    prompt["10"] = refine_node(STRENGTH, ["4", 0])
    prompt["11"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
    with pytest.raises(NodeFailed, match="the model samples 8 novel views but the cameras have 4"):
        comfy_host.run(prompt)


def test_schema(host):
    info = host[0].nodes.NODE_CLASS_MAPPINGS["SV4D2Refine"].GET_NODE_INFO_V1()
    required = info["input"]["required"]
    assert list(required) == ["model", "clip_vision", "vae", "frames", "cameras", "multiview", "strength", "steps",
                              "seed", "grid", "decoding_t", "crossfade", "pad_frames"]
    assert required["strength"][1]["min"] == 0.0 and required["strength"][1]["max"] == 1.0
    assert info["output"] == ["IMAGE", "STRING"]
    for name, value in required.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"
