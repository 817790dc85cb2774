"""Real ComfyUI server + the real frontend package in headless Debian Chromium (driven by playwright).

Never downloads playwright's own browsers: Chromium comes from Debian (`apt-get install -y chromium`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headless.server import REPO, ComfyServer, find_comfyui

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Frontend settings that keep first-run dialogs and the template browser out of the way.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": False,
            "Comfy.Workflow.ShowMissingModelsWarning": False, "Comfy.Validation.Workflows": False,
            "Comfy.Minimap.Visible": False}


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
    # The pack imports `sv4d_lib` as a top-level package; make sure the server process can, whatever its cwd.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        with server:
            yield server


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


PACK_LOADED = ("() => window.app?.graph && window.app.extensions?.some(e => e.name === 'SV4D2.CFGGridEditor')"
               " && window.app.extensions.some(e => e.name === 'SV4D2.CameraEditor')")
APP_LOADED = "() => window.app?.graph && window.app.extensions?.length > 0 && window.LiteGraph"


def open_comfy(browser, server, *, scale: float = 1.0, ready: str = PACK_LOADED):
    """A fresh page with the ComfyUI frontend loaded and (by default) the SV4D2 extensions registered."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=scale)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.wait_for_function(ready, timeout=120_000)
    page.page_errors = errors
    return page


@pytest.fixture()
def docs_img() -> Path:
    path = REPO / "docs" / "img"
    path.mkdir(parents=True, exist_ok=True)
    return path
