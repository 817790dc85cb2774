"""What a test does when something it needs from outside the repository is missing.

With the environment variable `CI` set (the CI job, `bash .ci/run`), a missing prerequisite fails the test: a green
run must mean every test ran. Without it (a developer's machine) the test skips, with the same message; run
pytest with `-rs` (scripts/test.sh does) to see why.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
# Shared references beside the clone (never copied into the repository): golden fixtures, key manifests, scenes.
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


def missing(message: str) -> NoReturn:
    """Fail under CI, else skip, naming what is missing and how to provide it."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def shared_reference(relative: str, marker: str | None = None) -> Path:
    """`../shared/reference/<relative>` beside the clone; `marker` (a file inside it) must exist too."""
    path = SHARED_REFERENCE / relative
    if not (path / marker if marker else path).exists():
        missing(
            f"{path / marker if marker else path} not found: the shared references (golden fixtures, key manifests, "
            f"real scenes) must sit in {SHARED_REFERENCE}, i.e. a folder 'shared/reference' beside the clone "
            "(copy or link it there)"
        )
    return path
