"""The real ComfyUI frontend in headless Debian Chromium, driven by playwright (browser tests, thumbnails).

Never downloads playwright's own browsers: Chromium comes from Debian (`apt-get install -y chromium`).
"""
from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Frontend settings for a clean, dialog-free page (written to the server's user folder).
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": False,
            "Comfy.Workflow.ShowMissingModelsWarning": False, "Comfy.Validation.Workflows": False,
            "Comfy.Minimap.Visible": False}
# Ready = node definitions registered (and, for the pack, both editor extensions registered; see
# web/sv4d2_common.js `registerOnce`). `app.extensions` is deprecated in newer frontends, so it is not read.
APP_LOADED = "() => window.app?.graph && window.LiteGraph?.registered_node_types?.KSampler"
PACK_LOADED = ("() => window.app?.graph && window.LiteGraph?.registered_node_types?.SV4D2CFGGrid"
               " && ['SV4D2.CFGGridEditor', 'SV4D2.CameraEditor', 'SV4D2.NodeLibrary']"
               ".every((name) => globalThis[Symbol.for('sv4d2.extensions')]?.has(name))")


def open_comfy(browser, server, *, scale: float = 1.0, ready: str = PACK_LOADED, width: int = 1400,
               height: int = 900):
    """A fresh page with the ComfyUI frontend loaded and (by default) the SV4D2 extensions registered."""
    page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.wait_for_function(ready, timeout=120_000)
    page.page_errors = errors
    return page
