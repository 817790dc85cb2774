"""Read, validate and split an SV4D 2.0 engine checkpoint (`sv4d2.safetensors`, `sv4d2_8views.safetensors`).

The official files are the complete fp32 `DiffusionEngine` state dict (spec §6): the UNet under
`model.diffusion_model.*`, the OpenCLIP ViT-H image encoder under `conditioner.embedders.0.open_clip.model.*`,
three copies of a KL-f8 VAE under `conditioner.embedders.{1,4,5}.encoder.*` (only the encoder + quant_conv of
embedder 1 is used; 4 and 5 are duplicates and are never read) and the first-stage decoder under
`first_stage_model.decoder.*` (no post_quant_conv).

Everything is read through safetensors (never pickle). `inspect_checkpoint` looks only at the header (names,
shapes, dtypes, metadata), so a wrong file is rejected before any tensor is read; `read_unet`, `read_clip_visual`
and `read_vae` then read one component each through the memory map.

Every size of the network is inferred from tensor shapes, so a tiny test checkpoint takes the same path as the real
one. Two numbers cannot be seen in shapes: the attention head size of the UNet and the head count of the CLIP
tower. The official files carry no metadata and use 64-channel UNet heads and the ViT-H-14 CLIP head width of 80;
any other checkpoint records them in its safetensors metadata under `sv4d2.num_head_channels` and
`sv4d2.clip_num_heads` (tests/tiny_checkpoint.py does).

A UNet-only file (keys `model.diffusion_model.*` or bare `input_blocks.*`) is accepted here: its `clip` and `vae`
are None and the caller decides whether it can do without them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model."
COND_VAE_PREFIX = "conditioner.embedders.1.encoder."
DECODER_PREFIX = "first_stage_model.decoder."
HF_REPO_ID = "stabilityai/sv4d2.0"

META_NUM_HEAD_CHANNELS = "sv4d2.num_head_channels"
META_CLIP_NUM_HEADS = "sv4d2.clip_num_heads"
OFFICIAL_NUM_HEAD_CHANNELS = 64
OFFICIAL_CLIP_HEAD_WIDTH = 80  # ViT-H-14: width 1280, 16 heads

# One tensor that each component must have; its absence means the component is not in the file.
_UNET_PROBE = "input_blocks.0.0.weight"
_CLIP_PROBE = "visual.conv1.weight"

EXPECTED_LAYOUT = (
    "SV4D 2.0 expects the engine file from stabilityai/sv4d2.0 (sv4d2.safetensors or sv4d2_8views.safetensors): "
    "a UNet under 'model.diffusion_model.*' with frame-attention blocks ('motion_blocks', 'time_mixer_motion') and "
    "camera embeddings 'time_mix_time_embed' fed by the 4*model_channels time embedding"
)


@dataclass(frozen=True)
class Variant:
    """A trained layout: T frames × V novel views per window. The weights of both are identical in shape."""

    name: str
    num_frames: int
    num_views: int
    use_3d_attention: bool
    filename: str  # official file name on the Hugging Face repo


VARIANTS = {
    "4v": Variant("4v", num_frames=12, num_views=4, use_3d_attention=True, filename="sv4d2.safetensors"),
    "8v": Variant("8v", num_frames=5, num_views=8, use_3d_attention=False, filename="sv4d2_8views.safetensors"),
}
VARIANT_CHOICES = ("auto", *VARIANTS)


@dataclass(frozen=True)
class ClipConfig:
    """OpenCLIP vision tower sizes (open_clip names)."""

    width: int
    layers: int
    heads: int
    mlp_width: int
    patch_size: int
    image_size: int
    output_dim: int


@dataclass(frozen=True)
class VaeConfig:
    """KL autoencoder sizes: the official `ddconfig` plus `embed_dim` (latent channels)."""

    ddconfig: dict
    embed_dim: int


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds, read from its header only."""

    path: Path
    variant: Variant
    network_config: dict  # UNet hyper-parameters under the official names (spec §2.1)
    unet_prefix: str  # "model.diffusion_model." or "" for a bare UNet file
    unet_shapes: dict[str, tuple[int, ...]]  # prefix stripped
    unet_dtype: torch.dtype  # storage dtype of the UNet weights
    unet_params: int
    clip: ClipConfig | None
    vae: VaeConfig | None
    metadata: dict[str, str]


def detect_variant(path: str | os.PathLike, choice: str = "auto") -> Variant:
    """`choice` if explicit, else from the file name: names containing "8view" are the 8-view model."""
    if choice not in VARIANT_CHOICES:
        raise ValueError(f"unknown SV4D 2.0 variant {choice!r}; use one of {', '.join(VARIANT_CHOICES)}")
    if choice != "auto":
        return VARIANTS[choice]
    return VARIANTS["8v" if "8view" in Path(path).name.lower() else "4v"]


def inspect_checkpoint(path: str | os.PathLike, variant: str = "auto") -> CheckpointInfo:
    """Validate an engine (or UNet-only) file from its header and infer every config; reads no tensor data."""
    path = Path(path)
    shapes, dtypes, metadata = _read_header(path)
    unet_prefix = _unet_prefix(path, shapes)
    unet_shapes = _strip(shapes, unet_prefix)
    if unet_prefix == "":  # a bare UNet file: every key is a UNet key, except those of other engine components
        unet_shapes = {k: v for k, v in unet_shapes.items() if not k.startswith(("conditioner.", "first_stage_model."))}
    chosen = detect_variant(path, variant)
    try:
        _check_is_sv4d2_unet(path, unet_shapes)
        network_config = infer_network_config(unet_shapes, metadata, chosen)
        check_state_dict_shapes(unet_shapes, unet_architecture_shapes(network_config), path, "UNet")
        return CheckpointInfo(
            path=path,
            variant=chosen,
            network_config=network_config,
            unet_prefix=unet_prefix,
            unet_shapes=unet_shapes,
            unet_dtype=dtypes[unet_prefix + _UNET_PROBE],
            unet_params=sum(math.prod(s) for s in unet_shapes.values()),
            clip=_clip_config(path, _strip(shapes, CLIP_PREFIX), metadata, network_config["context_dim"]),
            vae=_vae_config(path, _strip(shapes, COND_VAE_PREFIX), _strip(shapes, DECODER_PREFIX)),
            metadata=metadata,
        )
    except KeyError as error:
        raise ValueError(f"{path.name} is incomplete: tensor {error.args[0]!r} is missing; re-download it from "
                         f"{HF_REPO_ID}") from error


def read_unet(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    """UNet state dict with the official key names (prefix stripped), in the stored dtype."""
    return read_tensors(info.path, info.unet_prefix, keys=info.unet_shapes)


def read_clip_visual(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    """OpenCLIP vision tower, keys `visual.*` (the text-tower leftovers of the file are not read)."""
    _require(info.clip, "CLIP image encoder", CLIP_PREFIX + "visual.*", info.path)
    return read_tensors(info.path, CLIP_PREFIX + "visual.", add_prefix="visual.")


def read_vae(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    """One KL autoencoder in the standard layout (`encoder`, `quant_conv`, `decoder`, `post_quant_conv`).

    Encoder and quant_conv come from the conditioning VAE (embedder 1), the decoder from the first stage. The
    official decode has no post_quant_conv, so an identity 1×1 conv (identity matrix, zero bias) stands in for it: it
    reproduces its input bit for bit in any float dtype.
    """
    _require(info.vae, "VAE", f"{COND_VAE_PREFIX}encoder.* + {DECODER_PREFIX}*", info.path)
    state = read_tensors(info.path, COND_VAE_PREFIX + "encoder.", add_prefix="encoder.")
    state.update(read_tensors(info.path, COND_VAE_PREFIX + "quant_conv.", add_prefix="quant_conv."))
    state.update(read_tensors(info.path, DECODER_PREFIX, add_prefix="decoder."))
    z, dtype = info.vae.embed_dim, state["decoder.conv_in.weight"].dtype
    state["post_quant_conv.weight"] = torch.eye(z, dtype=dtype).reshape(z, z, 1, 1)
    state["post_quant_conv.bias"] = torch.zeros(z, dtype=dtype)
    return state


def read_tensors(path: str | os.PathLike, prefix: str, *, add_prefix: str = "",
                 keys: Mapping[str, object] | None = None) -> dict[str, torch.Tensor]:
    """Tensors whose name starts with `prefix`, renamed `prefix`→`add_prefix` (only `keys` if given, unprefixed)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        names = [prefix + k for k in keys] if keys is not None else [k for k in f.keys() if k.startswith(prefix)]
        return {add_prefix + k[len(prefix):]: f.get_tensor(k) for k in names}


def unet_architecture_shapes(network_config: Mapping) -> dict[str, tuple[int, ...]]:
    """Every UNet tensor name → shape for `network_config`, from this pack's pure-torch UNet on the `meta` device.

    The reference for a strict check that does not depend on how a host allocates its layers: ComfyUI's dynamic-VRAM
    ops create Linear weights lazily (None until `load_state_dict`, which then checks no shape), so an instantiated
    host model is no reference. Costs no memory and well under a second for the full-size model.
    """
    from .model import SV4D2UNet

    unet = SV4D2UNet(**network_config, device="meta")
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def check_state_dict_shapes(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                            path: Path, what: str) -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped tensors (a partial or foreign file)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if tuple(found[k]) != tuple(expected[k]))
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} with the wrong shape (e.g. {wrong[0]}: {tuple(found[wrong[0]])} instead of "
                 f"{tuple(expected[wrong[0]])})" if wrong else ""]
        raise ValueError(
            f"{path.name}: the {what} tensors do not match the SV4D 2.0 architecture: "
            f"{'; '.join(p for p in parts if p)}. The file is incomplete or from another model; "
            f"re-download it from {HF_REPO_ID}"
        )


def infer_network_config(unet: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str],
                         variant: Variant) -> dict:
    """The official `network_config` (sv4d2.yaml names) from UNet tensor shapes (keys without prefix)."""
    model_channels, in_channels = unet["input_blocks.0.0.weight"][:2]
    resblocks, downsamples, attention = _input_block_layout(unet)
    levels = len(downsamples) + 1
    level_of = [sum(d < i for d in downsamples) for i in resblocks]
    level_channels = {lv: unet[f"input_blocks.{i}.0.out_layers.3.weight"][0] for i, lv in zip(resblocks, level_of)}
    first_attn = min(attention)
    num_head_channels = _metadata_count(metadata, META_NUM_HEAD_CHANNELS, OFFICIAL_NUM_HEAD_CHANNELS)
    for channels in {level_channels[level_of[resblocks.index(i)]] for i in attention}:
        if channels % num_head_channels:
            raise ValueError(f"{channels} attention channels do not split into heads of {num_head_channels}; "
                             f"fix the '{META_NUM_HEAD_CHANNELS}' metadata of the checkpoint")
    return {
        "adm_in_channels": unet["label_emb.0.0.weight"][1],
        "attention_resolutions": sorted({2 ** level_of[resblocks.index(i)] for i in attention}, reverse=True),
        "channel_mult": [level_channels[lv] // model_channels for lv in range(levels)],
        "context_dim": unet[f"input_blocks.{first_attn}.1.transformer_blocks.0.attn2.to_k.weight"][1],
        "motion_context_dim": unet[f"input_blocks.{first_attn}.1.motion_blocks.0.attn2.to_k.weight"][1],
        "extra_ff_mix_layer": f"input_blocks.{first_attn}.1.time_mix_blocks.0.ff_in.net.0.proj.weight" in unet,
        "in_channels": in_channels,
        "legacy": False,
        "model_channels": model_channels,
        "num_classes": "sequential",
        "num_head_channels": num_head_channels,
        "num_res_blocks": level_of.count(0),
        "out_channels": unet["out.2.weight"][0],
        "replicate_time_mix_bug": True,
        "spatial_transformer_attn_type": "softmax-xformers",
        "time_block_merge_factor": 0.0,
        "time_block_merge_strategy": "learned_with_images",
        "time_kernel_size": list(unet["input_blocks.1.0.time_mix_blocks.in_layers.2.weight"][2:]),
        "time_mix_legacy": False,
        "transformer_depth": _count(unet, f"input_blocks.{first_attn}.1.transformer_blocks."),
        "use_checkpoint": False,
        "use_linear_in_transformer": len(unet[f"input_blocks.{first_attn}.1.proj_in.weight"]) == 2,
        "use_spatial_context": True,
        "use_spatial_transformer": True,
        "separate_motion_merge_factor": True,
        "use_motion_attention": True,
        "use_3d_attention": variant.use_3d_attention,
        "use_camera_emb": True,
    }


def download_checkpoint(variant: str, local_dir: str | os.PathLike) -> Path:
    """Fetch the official file of `variant` ("4v"/"8v") into `local_dir` (resumable; uses HF_TOKEN / the saved login).

    The repository is gated: the licence must be accepted on its page with the account whose token is used.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    filename = VARIANTS[variant].filename
    by_hand = (f"or download https://huggingface.co/{HF_REPO_ID}/blob/main/{filename} by hand into {local_dir}")
    try:
        return Path(hf_hub_download(HF_REPO_ID, filename, local_dir=local_dir))
    except GatedRepoError as error:
        raise RuntimeError(
            f"{HF_REPO_ID} is gated and refused this request ({type(error).__name__}): accept its licence at "
            f"https://huggingface.co/{HF_REPO_ID} and set HF_TOKEN (or run `hf auth login`), {by_hand}"
        ) from error
    except LocalEntryNotFoundError as error:
        raise RuntimeError(
            f"cannot download {filename} from {HF_REPO_ID}: no connection to the Hugging Face Hub "
            f"(offline, or HF_HUB_OFFLINE=1 is set); connect and retry, {by_hand}"
        ) from error
    except HfHubHTTPError as error:
        raise RuntimeError(f"downloading {filename} from {HF_REPO_ID} failed: {error}; retry, {by_hand}") from error


# --- header and validation -------------------------------------------------------------------------------------


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, torch.dtype], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}
            shapes = {k: tuple(s.get_shape()) for k, s in slices.items()}
            dtypes = {k: _DTYPES.get(s.get_dtype(), torch.float32) for k, s in slices.items()}
            return shapes, dtypes, dict(f.metadata() or {})
    except SafetensorError as error:
        raise ValueError(_not_safetensors_message(path, str(error))) from error


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}


def _not_safetensors_message(path: Path, error: str) -> str:
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return (f"{path.name} is a PyTorch pickle checkpoint (.ckpt/.pt); only .safetensors files are read, because "
                f"unpickling can run arbitrary code. Use the safetensors file from {HF_REPO_ID}")
    if "incomplete metadata" in error or "invalid header length" in error:
        return (f"{path.name} is truncated ({path.stat().st_size} bytes; its header announces more data): an "
                f"interrupted download or copy. Delete it and download it again from {HF_REPO_ID}")
    return f"{path.name} is not a valid safetensors file ({error}); {EXPECTED_LAYOUT}"


def _unet_prefix(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> str:
    if UNET_PREFIX + _UNET_PROBE in shapes:
        return UNET_PREFIX
    if _UNET_PROBE in shapes:
        return ""
    raise ValueError(f"{path.name} contains no diffusion UNet ({_describe_foreign(shapes)}); {EXPECTED_LAYOUT}")


def _describe_foreign(shapes: Mapping[str, tuple[int, ...]]) -> str:
    keys = list(shapes)
    if any("lora" in k for k in keys):
        return "it looks like a LoRA"
    if any(k.startswith(("encoder.", "decoder.", "first_stage_model.")) for k in keys):
        return "it looks like a VAE"
    if any(k.startswith(("visual.", "vision_model.", CLIP_PREFIX)) for k in keys):
        return "it looks like a CLIP image encoder"
    return f"{len(keys)} tensors, e.g. {keys[:3]}"


def _check_is_sv4d2_unet(path: Path, unet: Mapping[str, tuple[int, ...]]) -> None:
    """Tell SVD / SV3D / SV4D v1 / image UNets apart from SV4D 2.0 by the blocks they have (spec §6)."""
    adm = unet.get("label_emb.0.0.weight", (None, None))[1]
    if any(".time_stack." in k for k in unet):
        kind = {768: "SVD (img2vid)", 256: "SV3D_u", 1280: "SV3D_p"}.get(adm, "SVD-family video")
        raise ValueError(
            f"{path.name} looks like an {kind} checkpoint (adm_in_channels {adm}, 'time_stack' temporal blocks, "
            f"no motion blocks), not SV4D 2.0. {EXPECTED_LAYOUT}"
        )
    attn = sorted({m.group(1) for k in unet if (m := re.match(r"(input_blocks\.\d+\.1)\.proj_in\.", k))})
    if not attn or not any(".motion_blocks." in k for k in unet):
        raise ValueError(f"{path.name} looks like an image UNet (no temporal or motion blocks), not SV4D 2.0. "
                         f"{EXPECTED_LAYOUT}")
    camera = unet.get(f"{attn[0]}.time_mix_time_embed.0.weight")
    time_embed_dim = unet["time_embed.0.weight"][0]
    if camera is None or camera[1] != time_embed_dim or not any("time_mixer_motion" in k for k in unet):
        raise ValueError(
            f"{path.name} looks like an SV4D (v1) checkpoint: its camera embedding {attn[0]}.time_mix_time_embed.0 "
            f"takes {camera and camera[1]} inputs (the block width) instead of {time_embed_dim}, and it has no "
            f"'time_mixer_motion' mix factors. {EXPECTED_LAYOUT}"
        )


def _input_block_layout(unet: Mapping[str, tuple[int, ...]]) -> tuple[list[int], list[int], list[int]]:
    """Indices of the encoder's ResBlock, Downsample and attention blocks (input_blocks.0 is the stem conv)."""
    indices = sorted({int(m.group(1)) for k in unet if (m := re.match(r"input_blocks\.(\d+)\.", k))} - {0})
    downsamples = [i for i in indices if f"input_blocks.{i}.0.op.weight" in unet]
    resblocks = [i for i in indices if i not in downsamples]
    attention = [i for i in resblocks if f"input_blocks.{i}.1.proj_in.weight" in unet]
    return resblocks, downsamples, attention


def _clip_config(path: Path, clip: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str],
                 context_dim: int) -> ClipConfig | None:
    """The CLIP tower's sizes; every `visual.*` tensor must have its architecture shape and the image embedding
    must have the UNet's context width (it is the UNet's cross-attention context)."""
    if _CLIP_PROBE not in clip:
        return None
    width, _, patch, _ = clip[_CLIP_PROBE]
    grid = math.isqrt(clip["visual.positional_embedding"][0] - 1)
    heads = _metadata_count(metadata, META_CLIP_NUM_HEADS, width // OFFICIAL_CLIP_HEAD_WIDTH)
    if heads < 1 or width % heads:
        raise ValueError(f"{path.name}: CLIP width {width} does not split into {heads} heads; record the head count "
                         f"in the '{META_CLIP_NUM_HEADS}' metadata")
    config = ClipConfig(
        width=width,
        layers=_count(clip, "visual.transformer.resblocks."),
        heads=heads,
        mlp_width=clip["visual.transformer.resblocks.0.mlp.c_fc.weight"][0],
        patch_size=patch,
        image_size=grid * patch,
        output_dim=clip["visual.proj"][1],
    )
    visual = {k: v for k, v in clip.items() if k.startswith("visual.")}
    check_state_dict_shapes(visual, clip_visual_shapes(config), path, "CLIP image encoder")
    if config.output_dim != context_dim:
        raise ValueError(
            f"{path.name}: the CLIP image embedding has {config.output_dim} channels but the UNet's cross-attention "
            f"takes {context_dim}; the CLIP and UNet parts come from different models. Re-download the file from "
            f"{HF_REPO_ID}"
        )
    return config


def clip_visual_shapes(config: ClipConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of an OpenCLIP vision tower (`visual.*`, open_clip names) → its shape.

    Written out rather than taken from a host model: the shapes are plain arithmetic of the config, and ComfyUI
    converts these tensors (e.g. transposes `proj`) in ways that hide a wrong shape.
    """
    w, mlp = config.width, config.mlp_width
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    shapes = {
        "visual.conv1.weight": (w, 3, config.patch_size, config.patch_size),
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (tokens, w),
        "visual.proj": (w, config.output_dim),
    }
    for norm in ("ln_pre", "ln_post"):
        shapes.update({f"visual.{norm}.weight": (w,), f"visual.{norm}.bias": (w,)})
    for i in range(config.layers):
        block = f"visual.transformer.resblocks.{i}."
        shapes.update({
            block + "ln_1.weight": (w,), block + "ln_1.bias": (w,), block + "ln_2.weight": (w,), block + "ln_2.bias": (w,),
            block + "attn.in_proj_weight": (3 * w, w), block + "attn.in_proj_bias": (3 * w,),
            block + "attn.out_proj.weight": (w, w), block + "attn.out_proj.bias": (w,),
            block + "mlp.c_fc.weight": (mlp, w), block + "mlp.c_fc.bias": (mlp,),
            block + "mlp.c_proj.weight": (w, mlp), block + "mlp.c_proj.bias": (w,),
        })
    return shapes


def _vae_config(path: Path, encoder: Mapping[str, tuple[int, ...]],
                decoder: Mapping[str, tuple[int, ...]]) -> VaeConfig | None:
    if "encoder.conv_in.weight" not in encoder or "conv_in.weight" not in decoder:
        return None
    ch, in_channels = encoder["encoder.conv_in.weight"][:2]
    z_channels = decoder["conv_in.weight"][1]
    levels = _count(encoder, "encoder.down.")
    ddconfig = {
        "double_z": encoder["encoder.conv_out.weight"][0] == 2 * z_channels,
        "z_channels": z_channels,
        "resolution": 256,
        "in_channels": in_channels,
        "out_ch": decoder["conv_out.weight"][0],
        "ch": ch,
        "ch_mult": [encoder[f"encoder.down.{i}.block.0.conv1.weight"][0] // ch for i in range(levels)],
        "num_res_blocks": _count(encoder, "encoder.down.0.block."),
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    if any(k.startswith("encoder.down.") and ".attn." in k for k in encoder) or decoder["conv_out.weight"][1] != ch:
        raise ValueError(f"{path.name}: the VAE has attention outside its middle block or a decoder of another width "
                         f"than its encoder; this is not the SV4D 2.0 KL-f8 VAE")
    config = VaeConfig(ddconfig=ddconfig, embed_dim=encoder["quant_conv.weight"][0] // 2)
    expected_encoder, expected_decoder = vae_architecture_shapes(config)
    used = {k: v for k, v in encoder.items() if k.startswith(("encoder.", "quant_conv."))}  # its decoder is unused
    check_state_dict_shapes(used, expected_encoder, path, "VAE encoder")
    check_state_dict_shapes(decoder, expected_decoder, path, "VAE decoder")
    return config


def vae_architecture_shapes(config: VaeConfig) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Tensor shapes of the KL autoencoder parts the pack reads: the encoder (`encoder.*`, `quant_conv.*`) and the
    decoder (keys without a prefix), in the standard `ldm` layout, from `config`.

    Written out rather than taken from a host model: ComfyUI builds its VAE and loads the weights in one step, so a
    wrong shape would only surface as a raw `load_state_dict` size-mismatch error.
    """
    dd = config.ddconfig
    ch, mult, blocks, z = dd["ch"], dd["ch_mult"], dd["num_res_blocks"], dd["z_channels"]

    def conv(name: str, out: int, inp: int, k: int) -> dict[str, tuple[int, ...]]:
        return {f"{name}.weight": (out, inp, k, k), f"{name}.bias": (out,)}

    def norm(name: str, c: int) -> dict[str, tuple[int, ...]]:
        return {f"{name}.weight": (c,), f"{name}.bias": (c,)}

    def resnet(name: str, inp: int, out: int) -> dict[str, tuple[int, ...]]:
        shapes = {**norm(f"{name}.norm1", inp), **conv(f"{name}.conv1", out, inp, 3), **norm(f"{name}.norm2", out),
                  **conv(f"{name}.conv2", out, out, 3)}
        return {**shapes, **conv(f"{name}.nin_shortcut", out, inp, 1)} if inp != out else shapes

    def middle(name: str, c: int) -> dict[str, tuple[int, ...]]:
        attn = {**norm(f"{name}.attn_1.norm", c),
                **{k: v for part in "qkv" for k, v in conv(f"{name}.attn_1.{part}", c, c, 1).items()},
                **conv(f"{name}.attn_1.proj_out", c, c, 1)}
        return {**resnet(f"{name}.block_1", c, c), **attn, **resnet(f"{name}.block_2", c, c)}

    enc = conv("encoder.conv_in", ch, dd["in_channels"], 3)
    c = ch
    for level, m in enumerate(mult):
        for b in range(blocks):
            enc.update(resnet(f"encoder.down.{level}.block.{b}", c, ch * m))
            c = ch * m
        if level != len(mult) - 1:
            enc.update(conv(f"encoder.down.{level}.downsample.conv", c, c, 3))
    enc.update({**middle("encoder.mid", c), **norm("encoder.norm_out", c),
                **conv("encoder.conv_out", 2 * z if dd["double_z"] else z, c, 3),
                **conv("quant_conv", 2 * config.embed_dim, 2 * z, 1)})
    c = ch * mult[-1]
    dec = {**conv("conv_in", c, z, 3), **middle("mid", c)}
    for level in reversed(range(len(mult))):
        for b in range(blocks + 1):
            dec.update(resnet(f"up.{level}.block.{b}", c, ch * mult[level]))
            c = ch * mult[level]
        if level != 0:
            dec.update(conv(f"up.{level}.upsample.conv", c, c, 3))
    dec.update({**norm("norm_out", c), **conv("conv_out", dd["out_ch"], c, 3)})
    return enc, dec


def _metadata_count(metadata: Mapping[str, str], key: str, default: int) -> int:
    """A positive whole number recorded in the safetensors metadata under `key`; `default` where it is absent."""
    text = metadata.get(key)
    if text is None:
        return default
    value = int(text) if isinstance(text, str) and text.strip().isdigit() else 0
    if value < 1:
        raise ValueError(
            f"the checkpoint metadata '{key}' = {text!r} is not a positive whole number; correct it, or remove it to "
            f"use the official value"
        )
    return value


def _count(shapes: Mapping[str, object], prefix: str) -> int:
    """Number of numbered children `prefix<i>.` (blocks, layers)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in shapes if (m := pattern.match(k))})


def _strip(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}


def _require(component: object, what: str, keys: str, path: Path) -> None:
    if component is None:
        raise ValueError(f"{path.name} has no {what} ({keys}); use the full engine file from {HF_REPO_ID}")
