"""SV4D2 Load Model: one engine file → MODEL, CLIP_VISION and VAE (optionally downloaded from Hugging Face).

The official files bundle all three (spec §6), so one node replaces ImageOnlyCheckpointLoader, which cannot detect
SV4D 2.0. CLIP_VISION and VAE are core ComfyUI objects, so core nodes (CLIPVisionEncode, VAEEncode/Decode) accept
them too.
"""
from __future__ import annotations

import json
import os
import tempfile
import weakref
from pathlib import Path

import comfy.clip_vision
import comfy.sd
import folder_paths
from comfy_api.latest import io

from sv4d_lib import checkpoint

from .comfy_model import PRECISIONS, build_model_patcher

MODEL_FOLDERS = ("checkpoints", "diffusion_models")
DOWNLOAD_FOLDER = "checkpoints"
CATEGORY = "SV4D2/loaders"

# Loaded outputs by (file, size, mtime, variant, precision), held weakly: while anything (a cached output, a
# running graph) still holds them, re-running the node costs nothing; ComfyUI can still free them under RAM pressure.
_loaded: dict[tuple, tuple[weakref.ref, ...]] = {}


def checkpoint_options() -> list[str]:
    """`<folder>/<file>` for every .safetensors in checkpoints/ and diffusion_models/, plus the official names.

    The official names are always listed so a workflow keeps its value before and after the download.
    """
    official = [f"{DOWNLOAD_FOLDER}/{v.filename}" for v in checkpoint.VARIANTS.values()]
    found = sorted(
        f"{folder}/{name}" for folder in MODEL_FOLDERS for name in folder_paths.get_filename_list(folder)
        if name.lower().endswith(".safetensors")
    )
    return official + [name for name in found if name not in official]


def locate(ckpt_name: str) -> tuple[str, str, str | None]:
    """(folder, file name, full path or None if absent) of a combo entry."""
    if not isinstance(ckpt_name, str):  # ComfyUI 0.3.75 does not check V3 combo values against their options
        raise ValueError(f"ckpt_name must be a file name from the list, got {type(ckpt_name).__name__} {ckpt_name!r}")
    folder, _, name = ckpt_name.partition("/")
    if folder not in MODEL_FOLDERS or not name:
        raise ValueError(f"{ckpt_name!r} is not '<checkpoints|diffusion_models>/<file>'; pick a file from the list")
    return folder, name, folder_paths.get_full_path(folder, name)


def resolve_checkpoint(ckpt_name: str, download: bool) -> Path:
    """Path of a combo entry; fetch an official file first when it is missing and `download` is on."""
    folder, name, path = locate(ckpt_name)
    if path is not None:
        return Path(path)
    variant = next((k for k, v in checkpoint.VARIANTS.items() if f"{DOWNLOAD_FOLDER}/{v.filename}" == ckpt_name), None)
    if variant is None:
        raise ValueError(f"{ckpt_name} was not found in ComfyUI's {folder} folders; refresh the file list")
    target = Path(folder_paths.get_folder_paths(DOWNLOAD_FOLDER)[0])
    if not download:
        raise ValueError(
            f"{name} is not in {target} yet: turn on 'download' to fetch it from {checkpoint.HF_REPO_ID} "
            f"(gated: accept the licence on the model page and set HF_TOKEN), or put the file there by hand"
        )
    return checkpoint.download_checkpoint(variant, target)


def build_clip_vision(info: checkpoint.CheckpointInfo) -> comfy.clip_vision.ClipVisionModel:
    """ComfyUI CLIP vision model with the sizes of the file's OpenCLIP tower, keys converted by ComfyUI itself."""
    state = comfy.clip_vision.convert_to_transformers(checkpoint.read_clip_visual(info), "visual.")
    clip = info.clip
    config = {
        "hidden_act": "gelu", "hidden_size": clip.width, "image_size": clip.image_size,
        "intermediate_size": clip.mlp_width, "layer_norm_eps": 1e-5, "model_type": "clip_vision_model",
        "num_attention_heads": clip.heads, "num_channels": 3, "num_hidden_layers": clip.layers,
        "patch_size": clip.patch_size, "projection_dim": clip.output_dim,
    }
    # ClipVisionModel only takes a config file path.
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "clip_vision_config.json"
        config_path.write_text(json.dumps(config))
        model = comfy.clip_vision.ClipVisionModel(str(config_path))
    missing, unexpected = model.load_sd(state)
    if missing or unexpected:
        raise ValueError(f"{info.path.name}: the CLIP image encoder does not load (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); re-download the file from {checkpoint.HF_REPO_ID}")
    return model


def build_vae(info: checkpoint.CheckpointInfo) -> comfy.sd.VAE:
    """ComfyUI VAE: the conditioning encoder (+quant_conv) and the first-stage decoder, identity post_quant_conv."""
    state = checkpoint.read_vae(info)
    config = {"params": {"embed_dim": info.vae.embed_dim, "ddconfig": info.vae.ddconfig}}
    return comfy.sd.VAE(sd=state, config=config)


def load_components(path: Path, variant: str, precision: str) -> tuple:
    """(MODEL, CLIP_VISION, VAE) of a file, reused while the previous load is still alive."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, variant, precision)
    alive = tuple(ref() for ref in _loaded.get(key, ()))
    if alive and all(obj is not None for obj in alive):
        return alive
    info = checkpoint.inspect_checkpoint(path, variant)
    missing = [what for part, what in ((info.clip, "CLIP image encoder"), (info.vae, "VAE")) if part is None]
    if missing:
        raise ValueError(
            f"{path.name} has no {' and no '.join(missing)} (a UNet-only file); SV4D2 Load Model needs the full "
            f"engine file ({' or '.join(v.filename for v in checkpoint.VARIANTS.values())} from "
            f"{checkpoint.HF_REPO_ID})"
        )
    loaded = (build_model_patcher(info, precision), build_clip_vision(info), build_vae(info))
    for stale in [k for k, refs in _loaded.items() if any(ref() is None for ref in refs)]:
        del _loaded[stale]
    _loaded[key] = tuple(weakref.ref(obj) for obj in loaded)
    return loaded


class SV4D2LoadModel(io.ComfyNode):
    """Loads an SV4D 2.0 engine checkpoint as MODEL + CLIP_VISION + VAE."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        files = checkpoint_options()  # re-listed on every /object_info, so "refresh" finds new files
        return io.Schema(
            node_id="SV4D2LoadModel",
            display_name="SV4D2 Load Model",
            category=CATEGORY,
            description="Loads sv4d2.safetensors (4 views × 12 frames) or sv4d2_8views.safetensors (8 views × 5 "
                        "frames): the diffusion model, its CLIP image encoder and its VAE.",
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=files, default=files[0],
                    tooltip="Engine file from models/checkpoints or models/diffusion_models. The official files "
                            "are listed even before they are downloaded (see 'download').",
                ),
                io.Combo.Input(
                    "variant", options=list(checkpoint.VARIANT_CHOICES), default="auto",
                    tooltip="Trained layout. auto: from the file name ('8view' in it → 8 views × 5 frames, else "
                            "4 views × 12 frames). Both files have the same tensors, so the name is all there is.",
                ),
                io.Combo.Input(
                    "precision", options=list(PRECISIONS), default="auto",
                    tooltip="Weight dtype of the diffusion model. auto: ComfyUI's choice for this device (fp16/bf16 "
                            "on GPUs, fp32 on CPU). CLIP and VAE follow ComfyUI's own settings (--fp32-vae ...).",
                ),
                io.Boolean.Input(
                    "download", default=False,
                    tooltip=f"Fetch a missing official file from {checkpoint.HF_REPO_ID} into models/checkpoints "
                            "(~12 GB, resumable). The repository is gated: accept its licence on Hugging Face and "
                            "set HF_TOKEN.",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The SV4D 2.0 diffusion model for core samplers."),
                io.ClipVision.Output(display_name="CLIP_VISION", tooltip="The OpenCLIP ViT-H/14 image encoder."),
                io.Vae.Output(display_name="VAE", tooltip="KL-f8 VAE: conditioning encoder + first-stage decoder."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, ckpt_name: str, variant: str, precision: str, download: bool) -> tuple:
        """Re-run when the chosen file appears, disappears or changes on disk."""
        path = locate(ckpt_name)[2]
        stat = os.stat(path) if path else None
        return ckpt_name, variant, precision, download, stat and (stat.st_size, stat.st_mtime_ns)

    @classmethod
    def execute(cls, ckpt_name: str, variant: str, precision: str, download: bool) -> io.NodeOutput:
        return io.NodeOutput(*load_components(resolve_checkpoint(ckpt_name, download), variant, precision))


NODES = [SV4D2LoadModel]
