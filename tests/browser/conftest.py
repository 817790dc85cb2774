"""Real ComfyUI server + the real frontend package in headless Debian Chromium (see headless/browser.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headless.browser import CHROMIUM, CHROMIUM_FLAGS, SETTINGS
from headless.server import ComfyServer, find_comfyui


def missing(message: str) -> None:
    """A missing browser prerequisite skips locally and fails under CI (env CI set), naming the fix."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} — CI must run the browser tests (bash scripts/install_test_tools.sh installs it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        missing(f"Debian Chromium not found at {CHROMIUM} (install it with `apt-get install -y chromium`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed (pip install -r requirements-test.txt)")
    return CHROMIUM


def start_browser_server(root: Path, settings: dict) -> ComfyServer:
    """`main.py --cpu` with its own user folder (frontend settings, saved workflows), input and output folders."""
    user = root / "user"
    (user / "default").mkdir(parents=True)
    (user / "default" / "comfy.settings.json").write_text(json.dumps(settings))
    (root / "input").mkdir()
    return ComfyServer(find_comfyui(), root / "output", input_dir=root / "input", cpu=True,
                       extra_args=("--user-directory", str(user)))


@pytest.fixture(scope="session")
def browser_server(chromium, tmp_path_factory):
    """`main.py --cpu` with its own user folder (frontend settings, saved workflows) and output folder."""
    with start_browser_server(tmp_path_factory.mktemp("browser_server"), SETTINGS) as server:
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


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where tests save screenshots: a temporary folder, or $SV4D2_SCREENSHOTS (e.g. docs/img to refresh the docs'
    pictures on purpose); tests never write into the repository by themselves."""
    chosen = os.environ.get("SV4D2_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
