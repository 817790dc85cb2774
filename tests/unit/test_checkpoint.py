"""sv4d_lib.checkpoint: header inspection, config inference, component splitting and the errors for wrong files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sv4d_lib import checkpoint
from tests.tiny_checkpoint import CLIP_HEADS, CLIP_LAYERS, CLIP_WIDTH, write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
P = checkpoint.UNET_PREFIX


@pytest.fixture(scope="module")
def tiny(golden_dir, tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sv4d2_tiny.safetensors")


@pytest.fixture(scope="module")
def golden_config(golden_dir) -> dict:
    config = json.loads((golden_dir / "tiny_unet_config.json").read_text())
    return {v: config[f"network_config_{v}"]["params"] for v in ("4v", "8v")}


def write(path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None) -> Path:
    save_file({k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()}, path, metadata=metadata)
    return path


def video_unet(adm: int, *, camera_input: int = 128, motion: bool = True, stack: bool = False) -> dict:
    """The few UNet tensors the checkpoint detector reads, for a 32-channel network (time embedding 128)."""
    shapes = {P + "input_blocks.0.0.weight": (32, 8, 3, 3), P + "time_embed.0.weight": (128, 32),
              P + "label_emb.0.0.weight": (128, adm), P + "input_blocks.1.1.proj_in.weight": (32, 32)}
    if stack:
        shapes[P + "input_blocks.1.1.time_stack.0.attn1.to_q.weight"] = (32, 32)
    if motion:
        shapes[P + "input_blocks.1.1.motion_blocks.0.attn1.to_q.weight"] = (32, 32)
        shapes[P + "input_blocks.1.1.time_mix_time_embed.0.weight"] = (128, camera_input)
    return shapes


# --- the tiny engine file takes the production path ----------------------------------------------------------


def test_tiny_checkpoint_layout(tiny, golden_dir):
    with safe_open(str(tiny), "pt") as f:
        keys, metadata = set(f.keys()), f.metadata()
    golden_unet = set(load_file(golden_dir / "tiny_unet_weights.safetensors"))
    assert golden_unet <= keys and all(k.startswith(P) for k in golden_unet)
    assert {k for k in keys if k.startswith(checkpoint.CLIP_PREFIX + "visual.transformer.resblocks.")}
    assert metadata == {checkpoint.META_NUM_HEAD_CHANNELS: "16", checkpoint.META_CLIP_NUM_HEADS: str(CLIP_HEADS)}


def test_tiny_checkpoint_depends_on_seed_only_in_clip(tiny, tmp_path):
    other = load_file(write_tiny_checkpoint(tmp_path / "sv4d2_tiny.safetensors", seed=1))
    same = load_file(tiny)
    assert set(other) == set(same)
    changed = {k for k in same if not torch.equal(same[k], other[k])}
    assert changed and all(k.startswith(checkpoint.CLIP_PREFIX) for k in changed)


@pytest.mark.parametrize("variant", ["4v", "8v"])
def test_network_config_inferred_from_shapes(tiny, golden_config, variant):
    info = checkpoint.inspect_checkpoint(tiny, variant)
    expected = {k: v for k, v in golden_config[variant].items() if k != "target"}
    inferred = dict(info.network_config)
    # The official attention kernel choice (xformers vs plain softmax) computes the same function.
    assert {inferred.pop("spatial_transformer_attn_type"), expected.pop("spatial_transformer_attn_type")} <= {
        "softmax", "softmax-xformers"}
    assert inferred == expected
    assert (info.variant.num_frames, info.variant.num_views) == {"4v": (12, 4), "8v": (5, 8)}[variant]
    assert info.unet_params == sum(t.numel() for k, t in load_file(tiny).items() if k.startswith(P))
    assert info.unet_dtype == torch.float16


def test_clip_and_vae_configs_inferred(tiny, golden_dir):
    info = checkpoint.inspect_checkpoint(tiny)
    assert info.clip == checkpoint.ClipConfig(width=CLIP_WIDTH, layers=CLIP_LAYERS, heads=CLIP_HEADS,
                                              mlp_width=4 * CLIP_WIDTH, patch_size=14, image_size=224, output_dim=64)
    official = json.loads((golden_dir / "tiny_vae_config.json").read_text())
    ddconfig = official["conditioner.embedders.1"]["params"]["encoder_config"]["params"]["ddconfig"]
    assert info.vae.ddconfig == {k: v for k, v in ddconfig.items() if k != "attn_type"}
    assert info.vae.embed_dim == official["conditioner.embedders.1"]["params"]["encoder_config"]["params"]["embed_dim"]


def test_components_keep_official_names(tiny, golden_dir):
    info = checkpoint.inspect_checkpoint(tiny)
    unet = checkpoint.read_unet(info)
    golden = load_file(golden_dir / "tiny_unet_weights.safetensors")
    assert set(unet) == {k[len(P):] for k in golden}
    assert all(torch.equal(unet[k[len(P):]], v) for k, v in golden.items())
    clip = checkpoint.read_clip_visual(info)
    assert clip and all(k.startswith("visual.") for k in clip)  # text-tower leftovers are not read


def test_vae_is_conditioning_encoder_plus_first_stage_decoder(tiny, golden_dir):
    vae = checkpoint.read_vae(checkpoint.inspect_checkpoint(tiny))
    golden = load_file(golden_dir / "tiny_vae.safetensors")
    for key, value in vae.items():
        source = {"encoder.": checkpoint.COND_VAE_PREFIX + "encoder.", "quant_conv.": checkpoint.COND_VAE_PREFIX
                  + "quant_conv.", "decoder.": checkpoint.DECODER_PREFIX}
        prefix = next((p for p in source if key.startswith(p)), None)
        if prefix is not None:
            assert torch.equal(value, golden[source[prefix] + key[len(prefix):]]), key
    # no post_quant_conv in the official decode: an exact identity stands in for it
    z = torch.randn(2, 4, 3, 3, dtype=torch.float16)
    out = torch.nn.functional.conv2d(z, vae["post_quant_conv.weight"], vae["post_quant_conv.bias"])
    assert torch.equal(out, z)


def test_duplicate_vaes_of_embedders_4_and_5_are_ignored(tiny, tmp_path):
    state = load_file(tiny)
    for i in (4, 5):
        state.update({k.replace("embedders.1.", f"embedders.{i}."): v + i for k, v in state.items()
                      if k.startswith(checkpoint.COND_VAE_PREFIX)})
    with safe_open(str(tiny), "pt") as f:
        metadata = f.metadata()
    path = tmp_path / "sv4d2_tiny.safetensors"
    save_file(state, path, metadata=metadata)
    assert checkpoint.read_vae(checkpoint.inspect_checkpoint(path)).keys() == \
        checkpoint.read_vae(checkpoint.inspect_checkpoint(tiny)).keys()
    vae = checkpoint.read_vae(checkpoint.inspect_checkpoint(path))
    assert torch.equal(vae["encoder.conv_in.weight"], state[checkpoint.COND_VAE_PREFIX + "encoder.conv_in.weight"])


def test_unet_only_file_is_accepted_without_clip_and_vae(golden_dir, tmp_path):
    state = {k[len(P):]: v for k, v in load_file(golden_dir / "tiny_unet_weights.safetensors").items()}
    path = tmp_path / "unet.safetensors"
    save_file(state, path, metadata={checkpoint.META_NUM_HEAD_CHANNELS: "16"})
    info = checkpoint.inspect_checkpoint(path)
    assert info.unet_prefix == "" and info.clip is None and info.vae is None
    assert checkpoint.read_unet(info).keys() == state.keys()
    with pytest.raises(ValueError, match="no VAE"):
        checkpoint.read_vae(info)


# --- variants -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "choice", "expected"), [
    ("sv4d2.safetensors", "auto", "4v"), ("sv4d2_8views.safetensors", "auto", "8v"),
    ("my_SV4D2_8View_fp16.safetensors", "auto", "8v"), ("model.safetensors", "auto", "4v"),
    ("sv4d2.safetensors", "8v", "8v"), ("sv4d2_8views.safetensors", "4v", "4v"),
])
def test_variant_from_name_or_choice(name, choice, expected):
    assert checkpoint.detect_variant(name, choice).name == expected


def test_unknown_variant_rejected():
    with pytest.raises(ValueError, match="unknown SV4D 2.0 variant '12v'"):
        checkpoint.detect_variant("sv4d2.safetensors", "12v")


# --- wrong files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("adm", "kind"), [(768, "SVD"), (256, "SV3D_u"), (1280, "SV3D_p")])
def test_svd_family_recognised(tmp_path, adm, kind):
    path = write(tmp_path / "svd.safetensors", video_unet(adm, motion=False, stack=True))
    with pytest.raises(ValueError, match=rf"looks like an {kind}.*adm_in_channels {adm}.*no motion blocks"):
        checkpoint.inspect_checkpoint(path)


def test_sv4d_v1_recognised(tmp_path):
    path = write(tmp_path / "sv4d.safetensors", video_unet(128, camera_input=32))
    with pytest.raises(ValueError, match=r"SV4D \(v1\).*takes 32 inputs.*instead of 128.*time_mixer_motion"):
        checkpoint.inspect_checkpoint(path)


def test_image_unet_recognised(tmp_path):
    path = write(tmp_path / "sd.safetensors", video_unet(128, motion=False))
    with pytest.raises(ValueError, match="image UNet"):
        checkpoint.inspect_checkpoint(path)


@pytest.mark.parametrize(("shapes", "looks_like"), [
    ({"encoder.conv_in.weight": (32, 3, 3, 3)}, "a VAE"),
    ({"visual.conv1.weight": (32, 3, 14, 14)}, "a CLIP image encoder"),
    ({"lora_unet_down.lora_up.weight": (4, 4)}, "a LoRA"),
])
def test_file_without_unet_described(tmp_path, shapes, looks_like):
    path = write(tmp_path / "other.safetensors", shapes)
    with pytest.raises(ValueError, match=f"contains no diffusion UNet.*{looks_like}.*stabilityai/sv4d2.0"):
        checkpoint.inspect_checkpoint(path)


def test_incomplete_unet_names_the_missing_tensor(tmp_path):
    shapes = video_unet(128)
    del shapes[P + "time_embed.0.weight"]
    path = write(tmp_path / "partial.safetensors", shapes)
    with pytest.raises(ValueError, match="incomplete: tensor 'time_embed.0.weight' is missing"):
        checkpoint.inspect_checkpoint(path)


def test_truncated_file(tiny, tmp_path):
    path = tmp_path / "sv4d2.safetensors"
    path.write_bytes(tiny.read_bytes()[: 1 << 20])
    with pytest.raises(ValueError, match="truncated.*interrupted download"):
        checkpoint.inspect_checkpoint(path)


def test_pickle_checkpoint_refused(tmp_path):
    path = tmp_path / "sv4d2.safetensors"
    torch.save({P + "input_blocks.0.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="pickle checkpoint.*only .safetensors files are read"):
        checkpoint.inspect_checkpoint(path)


def test_text_file_refused(tmp_path):
    path = tmp_path / "sv4d2.safetensors"
    path.write_text("not a model, just some text of moderate length")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        checkpoint.inspect_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        checkpoint.inspect_checkpoint(tmp_path / "sv4d2.safetensors")


def test_head_size_without_metadata_is_the_official_64(golden_dir):
    # the golden tiny UNet has 16-channel heads and no metadata: 32 channels do not split into 64-channel heads
    with pytest.raises(ValueError, match="32 attention channels do not split into heads of 64.*metadata"):
        checkpoint.inspect_checkpoint(golden_dir / "tiny_unet_weights.safetensors")


def test_shape_check_lists_missing_unexpected_and_wrong():
    expected = {"a": (1,), "b": (2, 2), "c": (3,)}
    found = {"b": (2, 3), "c": (3,), "d": (4,)}
    with pytest.raises(ValueError, match=r"1 missing \(e.g. \['a'\]\); 1 unexpected \(e.g. \['d'\]\); 1 with the "
                                         r"wrong shape \(e.g. b: \(2, 3\) instead of \(2, 2\)\)"):
        checkpoint.check_state_dict_shapes(found, expected, Path("x.safetensors"), "UNet")
    checkpoint.check_state_dict_shapes(expected, expected, Path("x.safetensors"), "UNet")


# --- download ---------------------------------------------------------------------------------------------------


def test_download_offline_message(tmp_path):
    """HF_HUB_OFFLINE is read when huggingface_hub is imported, hence a fresh interpreter."""
    code = ("from sv4d_lib import checkpoint\n"
            "try:\n    checkpoint.download_checkpoint('8v', r'%s')\n"
            "except RuntimeError as error:\n    print(error)\n" % tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "cannot download sv4d2_8views.safetensors from stabilityai/sv4d2.0" in result.stdout, result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stdout and str(tmp_path) in result.stdout
    assert not list(tmp_path.glob("*.safetensors"))


def test_download_gated_message(tmp_path):
    from huggingface_hub.errors import GatedRepoError

    refused = GatedRepoError("Access to model stabilityai/sv4d2.0 is restricted.", response=mock.MagicMock())
    with mock.patch("huggingface_hub.hf_hub_download", side_effect=refused) as download:
        with pytest.raises(RuntimeError, match="gated.*accept its licence.*HF_TOKEN"):
            checkpoint.download_checkpoint("4v", tmp_path)
    assert download.call_args.args == ("stabilityai/sv4d2.0", "sv4d2.safetensors")
    assert download.call_args.kwargs == {"local_dir": tmp_path}
