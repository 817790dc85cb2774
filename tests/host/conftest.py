"""Fixtures that run the pack inside a real ComfyUI (the test host built by scripts/bootstrap_host.sh)."""
from __future__ import annotations

from pathlib import Path

import pytest

from headless.server import ComfyServer, find_comfyui

from .inprocess import InProcessComfy


@pytest.fixture(scope="session")
def comfy_dir() -> Path:
    try:
        return find_comfyui()
    except FileNotFoundError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def comfy_host(comfy_dir, tmp_path_factory) -> InProcessComfy:
    """In-process ComfyUI (`--cpu`) with this pack loaded; `.run(prompt)` executes API prompts."""
    return InProcessComfy(comfy_dir, tmp_path_factory.mktemp("comfy_host"))


@pytest.fixture(scope="session")
def comfy_server(comfy_dir, tmp_path_factory):
    """A real `main.py --cpu` subprocess on 127.0.0.1 with its own models/output folders."""
    root = tmp_path_factory.mktemp("comfy_server")
    models = root / "models"
    for name in ("checkpoints", "diffusion_models", "vae", "clip_vision"):
        (models / name).mkdir(parents=True)
    config = root / "extra_model_paths.yaml"
    config.write_text(
        "sv4d2_tests:\n"
        f"  base_path: {models}\n"
        "  is_default: true\n"
        "  checkpoints: checkpoints\n  diffusion_models: diffusion_models\n  vae: vae\n  clip_vision: clip_vision\n"
    )
    server = ComfyServer(comfy_dir, root / "output", extra_model_paths=config, input_dir=root / "input", cpu=True)
    server.models_dir = models
    (root / "input").mkdir()
    with server:
        yield server
