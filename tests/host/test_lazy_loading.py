"""Model loading when the host allocates Linear weights lazily, as ComfyUI's dynamic-VRAM ops do (≥ 0.38):
`comfy.ops` Linear layers start with `weight = bias = None` and take whatever tensor `load_state_dict` hands
them, with no shape check. The pack must still load the tiny checkpoint strictly and refuse a wrong shape."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.tiny_checkpoint import write_tiny_checkpoint

from .inprocess import pack_module

WRONG_KEY = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"  # a Linear no config inference reads


class LazyLinear(torch.nn.Module):
    """A Linear with no storage until loading, like upstream's dynamic-VRAM `comfy.ops` Linear: sizes are
    attributes, weight and bias are None, and loading assigns the checkpoint tensors unchecked."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        self.weight = None
        self.bias = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in ("weight", "bias") if self.has_bias else ("weight",):
            if prefix + name in state_dict:
                setattr(self, name, torch.nn.Parameter(state_dict[prefix + name], requires_grad=False))
            else:
                missing_keys.append(prefix + name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return torch.nn.functional.linear(x, self.weight.to(x.dtype), bias)


@pytest.fixture()
def lazy_ops(comfy_host, monkeypatch):
    """Make every ComfyUI model built in this test use lazily-initialised Linear layers."""
    import comfy.ops

    class LazyOps(comfy.ops.disable_weight_init):
        Linear = LazyLinear

    monkeypatch.setattr(comfy.ops, "pick_operations", lambda *args, **kwargs: LazyOps)
    return pack_module("nodes.comfy_model")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("lazy") / "sv4d2_tiny.safetensors")


def test_lazy_linear_model_loads_the_tiny_checkpoint_strictly(lazy_ops, tiny):
    from sv4d_lib import checkpoint

    info = checkpoint.inspect_checkpoint(tiny)
    empty = lazy_ops.SV4D2Config(info.network_config, info.variant).get_model().diffusion_model.state_dict()
    assert WRONG_KEY not in empty and len(empty) < len(info.unet_shapes)  # the old reference would refuse the file

    model = lazy_ops.load_model_patcher(tiny, precision="fp32").model.diffusion_model
    linears = [m for m in model.modules() if isinstance(m, LazyLinear)]
    assert len(linears) > 100 and all(m.weight is not None for m in linears)
    stored = checkpoint.read_unet(info)
    loaded = model.state_dict()
    assert set(loaded) == set(stored)
    assert all(torch.equal(loaded[k].float(), stored[k].float()) for k in stored)


def test_wrong_shape_is_refused_before_the_lazy_loader_sees_it(lazy_ops, tiny, tmp_path):
    state = load_file(tiny)
    key = "model.diffusion_model." + WRONG_KEY
    state[key] = state[key][:, :-1].contiguous()
    bad = tmp_path / "sv4d2_bad.safetensors"
    save_file(state, bad, metadata={"sv4d2.num_head_channels": "16", "sv4d2.clip_num_heads": "2"})
    with pytest.raises(ValueError, match=rf"sv4d2_bad.safetensors: the UNet tensors do not match the SV4D 2.0 "
                                         rf"architecture: 1 with the wrong shape \(e.g. {WRONG_KEY}: \(32, 31\) "
                                         rf"instead of \(32, 32\)\).*re-download"):
        lazy_ops.load_model_patcher(bad, precision="fp32")
