"""Shared pytest fixtures: where the golden fixtures live (../shared/reference/golden beside the clone)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.prerequisites import shared_reference


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden fixtures; never copied into the repo. Missing: a failure under CI, else a skip."""
    return shared_reference("golden", "MANIFEST.md")
