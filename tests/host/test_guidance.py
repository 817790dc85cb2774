"""SV4D2 CFG Grid inside real ComfyUI: core SamplerCustomAdvanced and KSampler apply the grid per latent.

The model is a test-only node (registered into this process's ComfyUI): an EPS model whose noise prediction is
the cross-attention value, 1 for the positive and 0 for the negative conditioning. With no noise and one Euler
step from σ0 to 0 the sampler returns the guided denoised latent at x = 0, i.e. exactly −σ0·s per latent.
"""
from __future__ import annotations

import json

import pytest
import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.guidance import cfg_grid

from .inprocess import NodeFailed

FAKE = "SV4D2TestEchoModel"


class _EchoContextUNet(torch.nn.Module):
    """Predicts noise = the first cross-attention value of each latent's conditioning."""

    def __init__(self, device=None, operations=None, **config):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, device=device), requires_grad=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def forward(self, x, timesteps, context=None, **kwargs):
        return context[:, 0, 0].view(-1, 1, 1, 1).to(x.dtype).expand_as(x)


class _EchoModelNode:
    """Test-only node: the echo model, SV4D2-style conditioning, an empty latent batch and cameras."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "num_frames": ("INT", {"default": 3, "min": 1}),
            "num_views": ("INT", {"default": 4, "min": 1}),
            "batch": ("INT", {"default": 1, "min": 1}),
            "counts_on": (["conditioning", "model", "nowhere"],),
        }}

    RETURN_TYPES = ("MODEL", "CONDITIONING", "CONDITIONING", "LATENT", "SV4D2_CAMERAS")
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, num_frames, num_views, batch, counts_on):
        import comfy.model_base
        import comfy.model_management
        import comfy.model_patcher
        import comfy.supported_models_base

        model = comfy.model_base.BaseModel(
            comfy.supported_models_base.BASE({}), comfy.model_base.ModelType.EPS, unet_model=_EchoContextUNet
        )
        counts = {"sv4d2_num_frames": num_frames, "sv4d2_num_views": num_views}
        if counts_on == "model":
            model.sv4d2_num_frames, model.sv4d2_num_views = num_frames, num_views
        extra = counts if counts_on == "conditioning" else {}
        patcher = comfy.model_patcher.ModelPatcher(
            model, comfy.model_management.get_torch_device(), comfy.model_management.unet_offload_device()
        )
        positive = [[torch.ones(1, 1, 8), dict(extra)]]
        negative = [[torch.zeros(1, 1, 8), dict(extra)]]
        latent = {"samples": torch.zeros(batch * num_frames * num_views, 4, 2, 2)}
        azimuths = tuple(360.0 * v / (num_views + 1) for v in range(num_views + 1))
        return patcher, positive, negative, latent, OrbitCameras((0.0,) * (num_views + 1), azimuths)


@pytest.fixture(scope="module")
def host(comfy_host):
    comfy_host.nodes.NODE_CLASS_MAPPINGS[FAKE] = _EchoModelNode
    yield comfy_host
    del comfy_host.nodes.NODE_CLASS_MAPPINGS[FAKE]


def grid_json(**spec) -> str:
    return json.dumps(spec)


def custom_advanced_graph(grid: str, *, frames=3, views=4, batch=1, counts_on="conditioning", cameras=False):
    """Echo model → SV4D2 CFG Grid (GUIDER) → SamplerCustomAdvanced, one Euler step, no noise."""
    cfg_inputs = {"model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "grid": grid}
    if cameras:
        cfg_inputs["cameras"] = ["1", 4]
    return {
        "1": {"class_type": FAKE, "inputs": {"num_frames": frames, "num_views": views, "batch": batch,
                                             "counts_on": counts_on}},
        "2": {"class_type": "SV4D2CFGGrid", "inputs": cfg_inputs},
        "3": {"class_type": "DisableNoise", "inputs": {}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 1,
                                                         "denoise": 1.0}},
        "6": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["3", 0], "guider": ["2", 0],
                                                                "sampler": ["4", 0], "sigmas": ["5", 0],
                                                                "latent_image": ["1", 3]}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "sv4d2_cfg_grid"}},
    }


def guided_scales(result, frames: int, views: int) -> torch.Tensor:
    """The per-latent scale the sampler applied: samples = −σ0·s."""
    sigma0 = result.output("5")[0].item()
    samples = result.output("6")["samples"]
    # every element of a latent carries the same value
    assert torch.equal(samples, samples[:, :1, :1, :1].expand_as(samples))
    return (samples[:, 0, 0, 0] / -sigma0).view(-1, frames, views)


def test_custom_advanced_applies_the_default_official_grid(host):
    result = host.run(custom_advanced_graph(json.dumps({"preset": "official_4v"})))
    torch.testing.assert_close(guided_scales(result, 3, 4)[0], cfg_grid("official_4v", 3, 4))


def test_custom_advanced_applies_ramp_and_overrides_over_every_batch(host):
    grid = grid_json(preset="ramp", params={"min": 1.0, "time_max": 4.0, "view_max": 2.5,
                                            "time_easing": "ease_in"}, overrides={"1,2": 9.0})
    result = host.run(custom_advanced_graph(grid, frames=4, views=3, batch=2))
    expected = cfg_grid("ramp", 4, 3, min=1.0, time_max=4.0, view_max=2.5, time_easing="ease_in")
    expected[1, 2] = 9.0
    scales = guided_scales(result, 4, 3)
    assert scales.shape[0] == 2
    for batch in scales:
        torch.testing.assert_close(batch, expected)


def test_cameras_give_the_ramp_its_view_distances(host):
    grid = grid_json(preset="ramp", params={"min": 1.0, "time_max": 1.0, "view_max": 3.0})
    result = host.run(custom_advanced_graph(grid, frames=2, views=4, cameras=True))
    # the echo node spreads 4 views evenly: 72°, 144°, 216°, 288° → distances 0.4, 0.8, 0.8, 0.4
    expected_row = torch.tensor([1.8, 2.6, 2.6, 1.8])
    torch.testing.assert_close(guided_scales(result, 2, 4)[0], expected_row.expand(2, 4))


def test_core_ksampler_uses_the_patched_model_and_ignores_cfg(host):
    grid = grid_json(preset="official_8v", shape=[2, 8])
    prompt = custom_advanced_graph(grid, frames=2, views=8, counts_on="model")
    del prompt["3"], prompt["4"], prompt["6"]
    prompt["6"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["2", 1], "add_noise": "disable", "noise_seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
        "scheduler": "simple", "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["1", 3],
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    prompt["8"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}  # runs the scheduler for σ0
    result = host.run(prompt)
    torch.testing.assert_close(guided_scales(result, 2, 8)[0], cfg_grid("official_8v", 2, 8))


def test_bad_grid_is_refused_before_running(host):
    bad = grid_json(preset="official_4v", params={"max": 45})
    ok, _, node_errors = host.validate(custom_advanced_graph(bad))
    assert not ok
    messages = json.dumps(node_errors["2"])
    assert "'max' = 45 is outside [0, 30]" in messages


def test_grid_drawn_for_another_shape_fails_with_the_fix(host):
    with pytest.raises(NodeFailed, match=r"drawn for 12 frames × 4 views but the model samples 3 frames × 4 views"):
        host.run(custom_advanced_graph(grid_json(preset="official_4v", shape=[12, 4])))


def test_missing_frame_and_view_counts_are_explained(host):
    with pytest.raises(NodeFailed, match="cannot tell how many frames and views the model samples"):
        host.run(custom_advanced_graph(grid_json(preset="ramp"), counts_on="nowhere"))


def test_cameras_must_match_the_view_count(host):
    prompt = custom_advanced_graph(grid_json(preset="ramp"), views=4, cameras=True)
    prompt["1b"] = {"class_type": FAKE, "inputs": {"num_frames": 3, "num_views": 8, "batch": 1,
                                                   "counts_on": "conditioning"}}
    prompt["2"]["inputs"]["cameras"] = ["1b", 4]
    with pytest.raises(NodeFailed, match="the cameras have 8 novel views but the model samples 4"):
        host.run(prompt)


def test_grid_fed_by_a_core_text_node_is_checked_when_it_runs(host):
    """Without the web editor the grid is a STRING socket; a linked value is validated at execution."""
    prompt = custom_advanced_graph("unused")
    prompt["9"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": grid_json(preset="official_4v")}}
    prompt["2"]["inputs"]["grid"] = ["9", 0]
    torch.testing.assert_close(guided_scales(host.run(prompt), 3, 4)[0], cfg_grid("official_4v", 3, 4))
    prompt["9"]["inputs"]["value"] = grid_json(preset="official_4v", params={"max": 31})
    with pytest.raises(NodeFailed, match=r"'max' = 31 is outside \[0, 30\]"):
        host.run(prompt)
