"""Test-only nodes for the Extend/Refine host tests: a MODEL wrapper that records every UNet call (conditioning
in, denoised out) and a random multi-view video in both layouts. Registered into the session's ComfyUI."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import torch

from sv4d_lib import guidance, multiview
from tests.tiny_checkpoint import tiny_checkpoint_name

from . import nvvs_fixtures as fx

RECORD_NODE = "SV4D2TestRecordModel"
# Decoded pixels of the same maths run twice: float rounding (~1e-7 in the denoised latents, e.g. from another
# batch split) is amplified by the random tiny VAE decoder to ~1e-3; another noise or input differs by O(0.1).
IMAGE_ATOL = 2e-3
MULTIVIEW_NODE = "SV4D2TestMultiview"


class RecordModelNode:
    """Clones MODEL with a `model_function_wrapper` that appends one record per UNet call to `records[tag]`.

    Each record holds, per branch ("cond"/"uncond"), the noisy input x, σ, the denoised output and the
    `cond_view` rows the model received: what a window was conditioned on, observed from outside the node.
    """

    records: ClassVar[dict[str, list[dict]]] = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "tag": ("STRING", {"default": "model"})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, model, tag: str):
        records = type(self).records.setdefault(tag, [])

        def wrapper(apply_model, args):
            c = args["c"]
            denoised = apply_model(args["input"], args["timestep"], **c)
            branches = len(args["cond_or_uncond"])
            parts = zip(args["input"].chunk(branches), args["timestep"].chunk(branches), denoised.chunk(branches),
                        c["cond_view"].chunk(branches))
            for kind, (x, sigma, den, cond_view) in zip(args["cond_or_uncond"], parts):
                records.append({"branch": "cond" if kind == 0 else "uncond", "x": x.detach().cpu().clone(),
                                "sigma": sigma.detach().cpu().clone(), "denoised": den.detach().cpu().clone(),
                                "cond_view": cond_view.detach().cpu().clone()})
            return denoised

        patched = model.clone()
        patched.set_model_unet_function_wrapper(wrapper)
        return (patched,)


def window_steps(records: list[dict], steps: int) -> list[list[dict]]:
    """Per window, per step: {"cond": record, "uncond": record} (windows run one after another)."""
    by_branch = {b: [r for r in records if r["branch"] == b] for b in ("cond", "uncond")}
    assert len(by_branch["cond"]) == len(by_branch["uncond"]) and len(by_branch["cond"]) % steps == 0
    pairs = [{"cond": c, "uncond": u} for c, u in zip(by_branch["cond"], by_branch["uncond"])]
    return [pairs[i : i + steps] for i in range(0, len(pairs), steps)]


def final_latents(step: dict, scales: torch.Tensor, latent_scale: float) -> torch.Tensor:
    """The LATENT a window's last Euler step returns (to σ = 0), recomputed from the recorded call as ComfyUI's
    euler does it: x + (0 − σ)·(x − guided)/σ, then divided by the latent scale (process_latent_out)."""
    cond, uncond = step["cond"], step["uncond"]
    guided = guidance.apply_cfg_grid(cond["denoised"], uncond["denoised"], scales)
    sigma = cond["sigma"][:, None, None, None]
    x = cond["x"]
    return (x + (x - guided) / sigma * (0.0 - sigma)) / latent_scale


class MultiviewNode:
    """A smooth random multi-view video: view-major (view 0 = the given frames) and its novel views frame-major
    (the latent order, what core VAEEncode needs to build SV4D 2.0 latents)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"frames": ("IMAGE",), "num_views": ("INT", {"default": 4, "min": 1}),
                             "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("IMAGE", "IMAGE")
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, frames: torch.Tensor, num_views: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        n, h, w, _ = frames.shape
        small = torch.rand(num_views * n, 3, 8, 8, generator=g)
        novel = torch.nn.functional.interpolate(small, (h, w), mode="bilinear", align_corners=False).movedim(1, -1)
        novel = (novel * 255).round().reshape(num_views, n, h, w, 3) / 255
        videos = torch.cat([frames[None, ..., :3], novel])
        return multiview.join_views(videos), multiview.views_to_frame_major(novel)


def tiny_8v_host(comfy_host, golden_dir: Path) -> Iterator[tuple]:
    """Body of a module fixture: the session's ComfyUI with these and the NVVS test nodes registered, and the
    `SV4D2 Load Model` name of the tiny 8-view engine file."""
    fx.register_test_nodes(comfy_host, golden_dir)
    comfy_host.nodes.NODE_CLASS_MAPPINGS[RECORD_NODE] = RecordModelNode
    comfy_host.nodes.NODE_CLASS_MAPPINGS[MULTIVIEW_NODE] = MultiviewNode
    yield comfy_host, tiny_checkpoint_name(comfy_host.models_dir, "8v")
    for name in (RECORD_NODE, MULTIVIEW_NODE):
        comfy_host.nodes.NODE_CLASS_MAPPINGS.pop(name, None)
    fx.unregister_test_nodes(comfy_host)
