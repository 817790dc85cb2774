"""Fault-injection harness: test nodes that make broken inputs, broken checkpoints, and the clean-failure check.

Every fault must fail with a clear error (matched by the test), leave nothing in the output folder (no partial,
empty or temporary file) and leave the host working: the next prompt runs.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.tiny_checkpoint import tiny_checkpoint_name

from ..inprocess import InProcessComfy, NodeFailed

IMAGES_NODE = "SV4D2TestFaultImages"
FAULTS = ("none", "nan_frame", "nan_last", "inf_patch", "black")


class FaultImagesNode:
    """Smooth random frames in [0.1, 0.9] (no white background), optionally broken: frame 1 or the last frame all
    NaN, an 8×8 +inf patch in frame 0, or every pixel black."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 12, "min": 1}), "width": ("INT", {"default": 64, "min": 1}),
                             "height": ("INT", {"default": 64, "min": 1}), "fault": (list(FAULTS),)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, count: int, width: int, height: int, fault: str):
        g = torch.Generator().manual_seed(count * 7919 + width)
        small = torch.rand(count, 3, 4, 4, generator=g)
        frames = torch.nn.functional.interpolate(small, (height, width), mode="bilinear", align_corners=False)
        frames = 0.1 + 0.8 * frames.movedim(1, -1)
        if fault == "nan_frame":
            frames[min(1, count - 1)] = float("nan")
        elif fault == "nan_last":
            frames[-1] = float("nan")
        elif fault == "inf_patch":
            frames[0, :8, :8] = float("inf")
        elif fault == "black":
            frames.zero_()
        return (frames,)


def register(host: InProcessComfy) -> None:
    host.nodes.NODE_CLASS_MAPPINGS[IMAGES_NODE] = FaultImagesNode


def unregister(host: InProcessComfy) -> None:
    host.nodes.NODE_CLASS_MAPPINGS.pop(IMAGES_NODE, None)


def output_files(host: InProcessComfy) -> set[Path]:
    """Every file under the output folder, hidden ones (temporaries) included."""
    return {p for p in host.output_dir.rglob("*") if p.is_file()}


def healthy_prompt() -> dict:
    """A small prompt that must still run after any fault: synthetic views written by Save Views."""
    return {
        "1": cameras_node(),
        "2": {"class_type": "SV4D2SyntheticScene", "inputs": {"cameras": ["1", 0], "frames": 2, "width": 16,
                                                              "height": 16}},
        "3": save_views_node(["2", 0], ["1", 0], "sv4d2_faults/healthy"),
    }


def cameras_node(cameras: str = '{"elevations_deg": [0, 0], "azimuths_deg": [0, 1]}', preset: str = "4v") -> dict:
    return {"class_type": "SV4D2Cameras", "inputs": {"preset": preset, "elevation_deg": 0.0, "cameras": cameras}}


def save_views_node(images: list, cameras: list, prefix: str, fps: float = 10.0) -> dict:
    return {"class_type": "SV4D2SaveViews",
            "inputs": {"images": images, "cameras": cameras, "filename_prefix": prefix, "fps": fps}}


def images_node(count: int = 12, width: int = 64, height: int = 64, fault: str = "none") -> dict:
    return {"class_type": IMAGES_NODE, "inputs": {"count": count, "width": width, "height": height, "fault": fault}}


def listed_files(host: InProcessComfy, ui: dict) -> list[Path]:
    """The files a node's UI output lists (as the frontend would fetch them)."""
    entries = [entry for value in ui.values() if isinstance(value, list) for entry in value
               if isinstance(entry, dict) and "filename" in entry]
    return [host.output_dir / entry["subfolder"] / entry["filename"] for entry in entries]


def assert_still_works(host: InProcessComfy) -> None:
    before = output_files(host)
    result = host.run(healthy_prompt())
    written = listed_files(host, result.ui["3"])
    assert len(written) == 5 and all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert output_files(host) - before == set(written)


def assert_fails_cleanly(host: InProcessComfy, prompt: dict, match: str, *, at_validation: bool = False) -> str:
    """The prompt fails with an error matching `match` (at validation time if asked), writes no file, and the
    host runs the next prompt. Returns the error text."""
    before = output_files(host)
    if at_validation:
        ok, error, node_errors = host.validate(prompt)
        assert not ok, "the prompt passed validation"
        message = f"{error} {node_errors}"
    else:
        with pytest.raises(NodeFailed) as failure:
            host.run(prompt)
        message = str(failure.value)
    assert re.search(match, message), message
    assert output_files(host) == before, f"files left behind: {sorted(map(str, output_files(host) - before))}"
    assert_still_works(host)
    return message


def write_checkpoint(path: Path, base: Path, edit: Callable[[dict[str, torch.Tensor], dict[str, str]], None]) -> Path:
    """A copy of `base` with `edit(tensors, metadata)` applied (in place), saved to `path`."""
    with safe_open(str(base), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata() or {})
    edit(tensors, metadata)
    save_file(tensors, path, metadata=metadata)
    return path


def base_checkpoint(models_dir: Path) -> str:
    """Combo name of the tiny engine file (golden UNet and VAE: finite, non-black output), written once."""
    return tiny_checkpoint_name(models_dir)


class Stopwatch:
    """Records when an interrupt was requested, to measure how long the node takes to stop."""

    def __init__(self):
        self.requested: float | None = None

    def request_interrupt(self) -> None:
        import comfy.model_management

        self.requested = time.perf_counter()
        comfy.model_management.interrupt_current_processing(True)
