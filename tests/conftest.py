"""Shared pytest fixtures: where the golden fixtures and the test host live."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO.parent / "shared" / "reference" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The official golden fixtures (../shared/reference/golden beside the clone); never copied into the repo."""
    if not (GOLDEN / "MANIFEST.md").is_file():
        pytest.skip(f"golden fixtures not found at {GOLDEN} (they live in ../shared/reference/golden beside the clone)")
    return GOLDEN
