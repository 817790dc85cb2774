"""Shared pytest fixtures: where the golden fixtures live (../shared/reference/golden beside the clone)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.prerequisites import shared_reference


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden fixtures; never copied into the repo. Missing: a failure under CI, else a skip."""
    return shared_reference("golden", "MANIFEST.md")


def pytest_report_header(config) -> str:
    """Which host this run tests (scripts/test_host.sh picks it): ComfyUI core and frontend versions."""
    from importlib.metadata import PackageNotFoundError, version

    from headless.server import find_comfyui

    try:
        comfy = find_comfyui()
        core = (comfy / "comfyui_version.py").read_text().split('"')[1]
    except (FileNotFoundError, IndexError):
        return "ComfyUI host: none found (bash scripts/bootstrap_host.sh)"
    try:
        frontend = version("comfyui-frontend-package")
    except PackageNotFoundError:
        frontend = "not installed"
    return f"ComfyUI host: core {core} at {comfy}, frontend {frontend}"
