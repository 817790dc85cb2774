"""SV4D2 Load Model inside real ComfyUI: the tiny engine file runs through core KSampler and SamplerCustomAdvanced,
and one model call inside the sampler equals the official UNet call rebuilt from first principles (spec §4).

Conditioning comes from a test-only node that follows the contract of nodes/comfy_model.py with seeded random
tensors, so the test knows exactly which CLIP token, concat latent, vector and reference view each latent must see.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from sv4d_lib.model import SV4D2UNet
from tests.tiny_checkpoint import tiny_checkpoint_name

from .inprocess import NodeFailed

CONTRACT = "SV4D2TestContractConditioning"
RECORD = "SV4D2TestRecordModelCalls"
CONTEXT_DIM, ADM, SIZE = 64, 128, 8  # 8×8 latents: the smallest the tiny UNet takes (3 downsamplings)
RECORDED: list[dict] = []


def contract_tensors(num_frames: int, num_views: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-frame CLIP tokens and latents, per-latent vectors and per-view reference latents (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "frame_tokens": torch.randn(num_frames, CONTEXT_DIM, generator=g),
        "frame_latents": torch.randn(num_frames, 4, SIZE, SIZE, generator=g),
        "vector": torch.randn(num_frames * num_views, ADM, generator=g),
        "references": torch.randn(num_views, 4, SIZE, SIZE, generator=g),
    }


class _ContractConditioningNode:
    """Positive/negative conditioning and an empty latent per the SV4D2 contract (rows in (t, v) order)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "num_frames": ("INT", {"default": 2, "min": 1}),
            "num_views": ("INT", {"default": 4, "min": 1}),
            "batch": ("INT", {"default": 1, "min": 1}),
            "extra_latents": ("INT", {"default": 0, "min": 0}),
            "seed": ("INT", {"default": 0, "min": 0}),
            "drop": (["nothing", "sv4d2_cond_view", "sv4d2_num_views"],),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, num_frames, num_views, batch, extra_latents, seed, drop):
        t = contract_tensors(num_frames, num_views, seed)
        rows = {
            "cross_attn": t["frame_tokens"].repeat_interleave(num_views, 0)[:, None],
            "concat_latent_image": t["frame_latents"].repeat_interleave(num_views, 0),
            "sv4d2_vector": t["vector"],
            "sv4d2_cond_view": t["references"].repeat(num_frames, 1, 1, 1),
        }
        uncond = {k: torch.zeros_like(v) for k, v in rows.items()}
        uncond["sv4d2_vector"] = rows["sv4d2_vector"].clone()  # the camera part is kept in the uncond

        def conditioning(values):
            extra = {k: v for k, v in values.items() if k != "cross_attn"}
            extra.update(sv4d2_num_frames=num_frames, sv4d2_num_views=num_views)
            extra.pop(drop, None)
            return [[values["cross_attn"], extra]]

        latent = torch.zeros(batch * num_frames * num_views + extra_latents, 4, SIZE, SIZE)
        return conditioning(rows), conditioning(uncond), {"samples": latent}


class _RecordModelCallsNode:
    """Wraps a MODEL so every UNet call (inputs, conds and output) lands in RECORDED."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "wrap"
    CATEGORY = "testing"

    def wrap(self, model):
        def record(apply_model, args):
            out = apply_model(args["input"], args["timestep"], **args["c"])
            RECORDED.append({**args, "output": out})
            return out

        patched = model.clone()
        patched.set_model_unet_function_wrapper(record)
        return (patched,)


@pytest.fixture(scope="module")
def host(comfy_host):
    comfy_host.nodes.NODE_CLASS_MAPPINGS[CONTRACT] = _ContractConditioningNode
    comfy_host.nodes.NODE_CLASS_MAPPINGS[RECORD] = _RecordModelCallsNode
    yield comfy_host
    del comfy_host.nodes.NODE_CLASS_MAPPINGS[CONTRACT], comfy_host.nodes.NODE_CLASS_MAPPINGS[RECORD]


def load_node(ckpt_name: str, precision: str = "auto", download: bool = False) -> dict:
    return {"class_type": "SV4D2LoadModel",
            "inputs": {"ckpt_name": ckpt_name, "variant": "auto", "precision": precision, "download": download}}


def contract_node(num_frames=2, num_views=4, batch=1, extra_latents=0, seed=0, drop="nothing") -> dict:
    return {"class_type": CONTRACT, "inputs": {"num_frames": num_frames, "num_views": num_views, "batch": batch,
                                               "extra_latents": extra_latents, "seed": seed, "drop": drop}}


def ksampler_prompt(ckpt_name: str, steps: int = 1, record: bool = False, cfg: float = 2.0, **contract) -> dict:
    model = ["5", 0] if record else ["1", 0]
    prompt = {
        "1": load_node(ckpt_name),
        "2": contract_node(**contract),
        "3": {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["2", 0], "negative": ["2", 1], "latent_image": ["2", 2], "seed": 7,
            "steps": steps, "cfg": cfg, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "sv4d2_model_test"}},
    }
    if record:
        prompt["5"] = {"class_type": RECORD, "inputs": {"model": ["1", 0]}}
    return prompt


# --- the loader's outputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "layout"), [("4v", (12, 4)), ("8v", (5, 8))])
def test_loader_outputs_core_objects_with_the_trained_layout(host, variant, layout):
    import comfy.clip_vision
    import comfy.model_patcher
    import comfy.sd

    name = tiny_checkpoint_name(host.models_dir, variant)
    result = host.run({"1": load_node(name), "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    model, clip_vision, vae = result.outputs["1"]
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    assert isinstance(clip_vision, comfy.clip_vision.ClipVisionModel) and isinstance(vae, comfy.sd.VAE)
    inner = model.model
    assert (inner.sv4d2_num_frames, inner.sv4d2_num_views) == layout and inner.sv4d2_variant == variant
    assert inner.model_config.unet_config["use_3d_attention"] == (variant == "4v")
    sampling = inner.model_sampling
    assert float(sampling.sigma_min) == pytest.approx(0.002) and float(sampling.sigma_max) == pytest.approx(700.0)
    assert inner.latent_format.scale_factor == 0.18215
    assert inner.get_dtype() == torch.float32  # ComfyUI's choice on CPU


def test_reloading_returns_the_same_objects_while_they_live(host):
    name = tiny_checkpoint_name(host.models_dir)
    prompt = {"1": load_node(name), "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    first = host.run(prompt).outputs["1"]
    second = host.run(prompt).outputs["1"]
    assert all(a is b for a, b in zip(first, second))


def test_precision_choice_and_cached_patcher_init(host):
    name = tiny_checkpoint_name(host.models_dir)
    model = host.run({"1": load_node(name, precision="bf16"),
                      "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}).outputs["1"][0]
    assert model.model.get_dtype() == torch.bfloat16
    assert model.model.diffusion_model.input_blocks[0][0].weight.dtype == torch.bfloat16
    init, args = model.cached_patcher_init
    rebuilt = init(*args, disable_dynamic=True)
    assert type(rebuilt).__name__ == "ModelPatcher" and rebuilt.model.get_dtype() == torch.bfloat16
    original, again = model.model.diffusion_model.state_dict(), rebuilt.model.diffusion_model.state_dict()
    assert original.keys() == again.keys() and all(torch.equal(original[k], again[k]) for k in original)


# --- core samplers ----------------------------------------------------------------------------------------------


def test_ksampler_with_two_windows_per_batch(host):
    """The conditioning holds one window (T·V rows); ComfyUI repeats it for a latent batch of two windows."""
    result = host.run(ksampler_prompt(tiny_checkpoint_name(host.models_dir), steps=2, batch=2, num_frames=1))
    samples = result.output("3")["samples"]
    assert samples.shape == (2 * 4, 4, SIZE, SIZE)
    assert torch.isfinite(samples).all() and samples.abs().max() > 0


def custom_advanced_prompt(ckpt_name: str, cfg: float = 2.0, steps: int = 1) -> dict:
    return {
        "1": load_node(ckpt_name),
        "2": contract_node(),
        "3": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "4": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 1],
                                                    "cfg": cfg}},
        "5": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "6": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "karras", "steps": steps,
                                                         "denoise": 1.0}},
        "7": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["3", 0], "guider": ["4", 0], "sampler": ["5", 0], "sigmas": ["6", 0], "latent_image": ["2", 2]}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": "sv4d2_model_test"}},
    }


def test_sampler_custom_advanced(host):
    prompt = custom_advanced_prompt(tiny_checkpoint_name(host.models_dir))
    result = host.run(prompt)
    sigmas = result.output("6")
    assert float(sigmas[0]) == pytest.approx(700.0, rel=1e-4) and float(sigmas[-1]) == 0
    for output in result.outputs["7"]:  # output and denoised_output
        assert output["samples"].shape == (8, 4, SIZE, SIZE) and torch.isfinite(output["samples"]).all()


# --- what the UNet sees ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def direct_unet(golden_dir):
    """The tiny UNet built directly from sv4d_lib (no ComfyUI), per variant, fp32."""
    import json

    config = json.loads((golden_dir / "tiny_unet_config.json").read_text())
    weights = {k.removeprefix("model.diffusion_model."): v.float()
               for k, v in load_file(golden_dir / "tiny_unet_weights.safetensors").items()}
    nets = {}
    for variant in ("4v", "8v"):
        params = {k: v for k, v in config[f"network_config_{variant}"]["params"].items() if k != "target"}
        net = SV4D2UNet(**params).eval()
        net.load_state_dict(weights)
        nets[variant] = net
    return nets


@pytest.mark.parametrize(("variant", "num_frames", "num_views"), [("4v", 2, 4), ("8v", 2, 8)])
def test_model_call_equals_official_call(host, direct_unet, variant, num_frames, num_views):
    """D(x, σ) of a sampler call = x/(σ²+1) − σ/√(σ²+1) · UNet(cat[x/√(σ²+1), concat], ¼ln σ, context, y, cond_view)
    with context = CLIP token of each frame `(B, T, D)` and cond_view = the reference of each view `(B·V, 4, h, w)`."""
    RECORDED.clear()
    host.run(ksampler_prompt(tiny_checkpoint_name(host.models_dir, variant), steps=1, record=True,
                             num_frames=num_frames, num_views=num_views, seed=5))
    call = RECORDED[0]
    t = contract_tensors(num_frames, num_views, seed=5)
    n = num_frames * num_views
    assert call["c"]["num_frames"] == num_frames and call["c"]["num_views"] == num_views
    halves = {0: (t["frame_tokens"], t["frame_latents"], t["references"]),  # 0 = cond, 1 = uncond (zeros)
              1: (torch.zeros_like(t["frame_tokens"]), torch.zeros_like(t["frame_latents"]),
                  torch.zeros_like(t["references"]))}
    order = call["cond_or_uncond"]
    assert len(order) == 2 and call["input"].shape[0] == 2 * n
    context = torch.stack([halves[i][0] for i in order])
    concat = torch.cat([halves[i][1].repeat_interleave(num_views, 0) for i in order])
    cond_view = torch.cat([halves[i][2] for i in order])
    y = t["vector"].repeat(2, 1)
    x, sigma = call["input"].float(), call["timestep"].float()
    s = sigma.view(-1, 1, 1, 1)
    with torch.no_grad():
        v = direct_unet[variant](torch.cat([x / (s**2 + 1).sqrt(), concat], 1), 0.25 * sigma.log(), context, y,
                                 cond_view, num_frames=num_frames, num_views=num_views)
    expected = x / (s**2 + 1) - v * s / (s**2 + 1).sqrt()
    torch.testing.assert_close(call["output"].float(), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2])
def test_core_ksampler_refuses_a_non_finite_result(host, steps):
    """cfg = NaN passes core's validation; the run fails with the pack's error instead of saving black frames."""
    with pytest.raises(NodeFailed, match="the model produced NaN: .* NaN or infinite; load the model with"):
        host.run(ksampler_prompt(tiny_checkpoint_name(host.models_dir), steps=steps, cfg=float("nan")))


def test_sampler_custom_advanced_refuses_a_non_finite_result(host):
    with pytest.raises(NodeFailed, match="the model produced NaN"):
        host.run(custom_advanced_prompt(tiny_checkpoint_name(host.models_dir), cfg=float("nan"), steps=2))


def test_missing_conditioning_names_the_encode_node(host):
    with pytest.raises(NodeFailed, match="lacks sv4d2_cond_view.*SV4D2 Encode Video"):
        host.run(ksampler_prompt(tiny_checkpoint_name(host.models_dir), drop="sv4d2_cond_view"))


def test_latent_batch_must_be_whole_windows(host):
    with pytest.raises(NodeFailed, match="9 latents, not a multiple of .*2 frames × 4 views.*SV4D2 Encode Video"):
        host.run(ksampler_prompt(tiny_checkpoint_name(host.models_dir), extra_latents=1))


def test_unet_only_file_is_refused_by_the_loader(host, golden_dir):
    path = host.models_dir / "diffusion_models" / "sv4d2_unet_only.safetensors"
    save_file(load_file(golden_dir / "tiny_unet_weights.safetensors"), path,
              metadata={"sv4d2.num_head_channels": "16"})
    prompt = {"1": load_node("diffusion_models/sv4d2_unet_only.safetensors"),
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(NodeFailed, match="no CLIP image encoder and no VAE.*needs the full engine file"):
        host.run(prompt)


def test_missing_official_file_without_download(host):
    prompt = {"1": load_node("checkpoints/sv4d2_8views.safetensors"),
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(NodeFailed, match="sv4d2_8views.safetensors is not in .* turn on 'download'.*HF_TOKEN"):
        host.run(prompt)


def test_foreign_file_is_explained(host):
    path = host.models_dir / "checkpoints" / "svd_xt.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 8, 3, 3),
               "model.diffusion_model.label_emb.0.0.weight": torch.zeros(128, 768),
               "model.diffusion_model.input_blocks.1.1.time_stack.0.attn1.to_q.weight": torch.zeros(32, 32)}, path)
    prompt = {"1": load_node("checkpoints/svd_xt.safetensors"),
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(NodeFailed, match="looks like an SVD"):
        host.run(prompt)
