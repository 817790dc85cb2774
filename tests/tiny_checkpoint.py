"""A tiny SV4D 2.0 engine checkpoint for tests: the official key layout, every part small.

* UNet: the golden `tiny_unet_weights.safetensors` (official names, model_channels 32, adm 128, context 64), kept
  under `model.diffusion_model.`;
* VAE: the golden `tiny_vae.safetensors` (conditioning VAE of embedder 1 + first-stage decoder, ch 32);
* CLIP: a random OpenCLIP ViT (width 32, 2 layers, 2 heads, patch 14, 224 px, output 64 = the UNet's
  context_dim) under `conditioner.embedders.0.open_clip.model.`, plus small text-tower leftovers as in the real
  file (the loader must ignore them).

Without the golden folder (a user's machine), `write_tiny_checkpoint(..., random_weights=True)` builds the same
architecture from seeded random weights (the UNet with this pack's own class, the VAE with ComfyUI's, so ComfyUI
must be importable); the main job's smoke run uses that.

Its safetensors metadata records the two sizes shapes cannot tell (`sv4d2.num_head_channels`,
`sv4d2.clip_num_heads`), see `sv4d_lib.checkpoint`. The loader picks the variant from the file name, so name the
file e.g. `sv4d2_tiny.safetensors` (4 views × 12 frames) or `sv4d2_tiny_8views.safetensors` (8 views × 5 frames).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

GOLDEN = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "golden"
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model."
CLIP_WIDTH, CLIP_LAYERS, CLIP_HEADS, CLIP_PATCH, CLIP_IMAGE_SIZE = 32, 2, 2, 14, 224


# The golden tiny UNet and VAE configurations (golden/tiny_unet_config.json, tiny_vae_config.json).
TINY_UNET_CONFIG = {
    "adm_in_channels": 128, "attention_resolutions": [4, 2, 1], "channel_mult": [1, 2, 4, 4], "context_dim": 64,
    "motion_context_dim": 4, "extra_ff_mix_layer": True, "in_channels": 8, "legacy": False, "model_channels": 32,
    "num_classes": "sequential", "num_head_channels": 16, "num_res_blocks": 2, "out_channels": 4,
    "replicate_time_mix_bug": True, "spatial_transformer_attn_type": "softmax", "time_block_merge_factor": 0.0,
    "time_block_merge_strategy": "learned_with_images", "time_kernel_size": [3, 1, 1], "time_mix_legacy": False,
    "transformer_depth": 1, "use_checkpoint": False, "use_linear_in_transformer": True, "use_spatial_context": True,
    "use_spatial_transformer": True, "separate_motion_merge_factor": True, "use_motion_attention": True,
    "use_3d_attention": True, "use_camera_emb": True,
}
TINY_VAE_DDCONFIG = {"attn_resolutions": [], "ch": 32, "ch_mult": [1, 2, 4, 4], "double_z": True, "dropout": 0.0,
                     "in_channels": 3, "num_res_blocks": 2, "out_ch": 3, "resolution": 256, "z_channels": 4}


def write_tiny_checkpoint(path: str | Path, *, seed: int = 0, random_weights: bool = False) -> Path:
    """Write the tiny engine file to `path` (the CLIP weights depend on `seed`) and return the path.

    UNet and VAE are the golden fp16 weights, or seeded random ones with `random_weights=True`."""
    if random_weights:
        state = _random_unet_and_vae(seed)
    elif not (GOLDEN / "MANIFEST.md").is_file():
        raise FileNotFoundError(f"golden fixtures not found at {GOLDEN} (../shared/reference/golden beside the clone); "
                                "pass random_weights=True for a smoke-test checkpoint")
    else:
        state = load_file(GOLDEN / "tiny_unet_weights.safetensors")
        state.update(load_file(GOLDEN / "tiny_vae.safetensors"))
    config = TINY_UNET_CONFIG
    state.update({CLIP_PREFIX + k: v for k, v in tiny_open_clip(config["context_dim"], seed).items()})
    metadata = {"sv4d2.num_head_channels": str(config["num_head_channels"]), "sv4d2.clip_num_heads": str(CLIP_HEADS)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, path, metadata=metadata)
    return path


def _random_unet_and_vae(seed: int) -> dict[str, torch.Tensor]:
    """Seeded random tiny UNet and VAE with the official key layout (no golden files needed)."""
    from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder

    from sv4d_lib.model import SV4D2UNet

    torch.manual_seed(seed)
    state = {f"model.diffusion_model.{k}": v for k, v in SV4D2UNet(**TINY_UNET_CONFIG).state_dict().items()}
    encoder, decoder = Encoder(**TINY_VAE_DDCONFIG), Decoder(**TINY_VAE_DDCONFIG)
    # ComfyUI's layers skip weight initialisation (torch.empty): initialise them as plain torch layers would
    for module in [*encoder.modules(), *decoder.modules()]:
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm):
            if isinstance(module, base):
                base.reset_parameters(module)
    quant = torch.nn.Conv2d(8, 8, 1)
    prefix = "conditioner.embedders.1.encoder."
    state.update({f"{prefix}encoder.{k}": v for k, v in encoder.state_dict().items()})
    state.update({f"{prefix}quant_conv.{k}": v for k, v in quant.state_dict().items()})
    state.update({f"first_stage_model.decoder.{k}": v for k, v in decoder.state_dict().items()})
    return {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}


def tiny_open_clip(output_dim: int, seed: int) -> dict[str, torch.Tensor]:
    """Random OpenCLIP ViT weights with open_clip's key names (fp16-rounded, like the golden weights)."""
    g = torch.Generator().manual_seed(seed)
    w, tokens = CLIP_WIDTH, (CLIP_IMAGE_SIZE // CLIP_PATCH) ** 2 + 1

    def dense(*shape: int, fan_in: int) -> torch.Tensor:
        return torch.randn(shape, generator=g) / fan_in ** 0.5

    def norm(name: str, width: int) -> dict[str, torch.Tensor]:
        return {f"{name}.weight": 1 + 0.1 * torch.randn(width, generator=g),
                f"{name}.bias": 0.1 * torch.randn(width, generator=g)}

    state = {
        "visual.class_embedding": 0.1 * torch.randn(w, generator=g),
        "visual.positional_embedding": 0.1 * torch.randn(tokens, w, generator=g),
        "visual.conv1.weight": dense(w, 3, CLIP_PATCH, CLIP_PATCH, fan_in=3 * CLIP_PATCH**2),
        **norm("visual.ln_pre", w),
        **norm("visual.ln_post", w),
        "visual.proj": dense(w, output_dim, fan_in=w),
        # text-tower leftovers of the real file (unused by SV4D 2.0)
        "token_embedding.weight": dense(16, output_dim, fan_in=1),
        "positional_embedding": dense(8, output_dim, fan_in=1),
        **norm("ln_final", output_dim),
        "text_projection": dense(output_dim, output_dim, fan_in=output_dim),
        "logit_scale": torch.tensor(4.6052),
    }
    for i in range(CLIP_LAYERS):
        block = f"visual.transformer.resblocks.{i}"
        state.update({
            **norm(f"{block}.ln_1", w),
            f"{block}.attn.in_proj_weight": dense(3 * w, w, fan_in=w),
            f"{block}.attn.in_proj_bias": 0.05 * torch.randn(3 * w, generator=g),
            f"{block}.attn.out_proj.weight": dense(w, w, fan_in=w),
            f"{block}.attn.out_proj.bias": 0.05 * torch.randn(w, generator=g),
            **norm(f"{block}.ln_2", w),
            f"{block}.mlp.c_fc.weight": dense(4 * w, w, fan_in=w),
            f"{block}.mlp.c_fc.bias": 0.05 * torch.randn(4 * w, generator=g),
            f"{block}.mlp.c_proj.weight": dense(w, 4 * w, fan_in=4 * w),
            f"{block}.mlp.c_proj.bias": 0.05 * torch.randn(w, generator=g),
        })
    return {k: v.to(torch.float16) for k, v in state.items()}


def tiny_checkpoint_name(models_dir: str | Path, variant: str = "4v") -> str:
    """Write the tiny file into `<models_dir>/checkpoints` (once) and return its `SV4D2 Load Model` entry."""
    name = {"4v": "sv4d2_tiny.safetensors", "8v": "sv4d2_tiny_8views.safetensors"}[variant]
    path = Path(models_dir) / "checkpoints" / name
    if not path.is_file():
        write_tiny_checkpoint(path)
    return f"checkpoints/{name}"
