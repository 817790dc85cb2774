"""The fault suite runs in the session's in-process ComfyUI (tests/host/conftest.py) with its test nodes added."""
from __future__ import annotations

import pytest

from . import harness


@pytest.fixture(scope="package")
def host(comfy_host):
    harness.register(comfy_host)
    yield comfy_host
    harness.unregister(comfy_host)


@pytest.fixture(autouse=True)
def no_pending_interrupt():
    """An interrupt a test requested never leaks into the next prompt."""
    import comfy.model_management

    yield
    comfy.model_management.interrupt_current_processing(False)
