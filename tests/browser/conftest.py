"""Real ComfyUI server + the real frontend package in headless Debian Chromium (see headless/browser.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from headless.browser import CHROMIUM, CHROMIUM_FLAGS, SETTINGS
from headless.server import REPO, ComfyServer, find_comfyui


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Debian Chromium not found at {CHROMIUM} (install it with `apt-get install -y chromium`)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                        "(pip install -r requirements-test.txt)")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_server(chromium, tmp_path_factory):
    """`main.py --cpu` with its own user folder (frontend settings, saved workflows) and output folder."""
    root = tmp_path_factory.mktemp("browser_server")
    user = root / "user"
    (user / "default").mkdir(parents=True)
    (user / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS))
    server = ComfyServer(find_comfyui(), root / "output", cpu=True, extra_args=("--user-directory", str(user)))
    with server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium):
    """Module-scoped: playwright's sync API keeps an event loop running in this thread while it is open, which
    would stop the in-process ComfyUI of later test modules from running its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def docs_img() -> Path:
    path = REPO / "docs" / "img"
    path.mkdir(parents=True, exist_ok=True)
    return path
