"""The exported GLB as an artist sees it: core's Preview 3D node in the real frontend (headless Chromium, WebGL in
software) loads the file Export 4D Mesh wrote, lists exactly one animation named after the file, and the model
moves while that animation plays and stands still while it is paused."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from headless.browser import APP_LOADED, open_comfy
from sv4d_lib.nerf.export import ExportSettings, export_4d
from sv4d_lib.nerf.mesh import SurfaceSettings
from sv4d_lib.nerf.texture import BakeSettings
from tests.unit.analytic_field import AnalyticField

# three.js's canvas inside the node (the graph is drawn on #graph-canvas). Asking a canvas for a context would
# create one, so the viewer is found by elimination.
VIEWER_CANVAS = """() => [...document.querySelectorAll('canvas')]
  .find((c) => c.id !== 'graph-canvas' && c.width > 100 && c.offsetParent !== null)"""

# Preview 3D as a user wires it: the file name typed into (or linked to) its model_file input, then Queue.
RUN_PREVIEW = """async (name) => {
  app.graph.clear();
  const node = LiteGraph.createNode('Preview3D');
  app.graph.add(node);
  node.pos = [80, 80];
  node.size = [720, 720];
  node.widgets.find((w) => w.name === 'model_file').value = name;
  app.canvas.ds.scale = 1;
  app.canvas.ds.offset = [0, 0];
  app.canvas.setDirty(true, true);
  // as a user would: the node's viewer is on screen (its code loads lazily) before Queue is pressed
  const deadline = Date.now() + 60000;
  while (!(VIEWER_CANVAS)() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await app.queuePrompt(0, 1);
  return node.id;
}""".replace("VIEWER_CANVAS", VIEWER_CANVAS)

# The Preview 3D widget of the node: its WebGL canvas and, once a model with animations is loaded, the animation
# bar (play/pause button, speed and clip selects) that the frontend shows above the view.
VIEWER_STATE = """() => {
  const viewerCanvas = VIEWER_CANVAS;
  const canvas = viewerCanvas();
  const play = document.querySelector('i.pi-play, i.pi-pause');
  const bar = play?.closest('div.pointer-events-auto');
  const labels = bar ? [...bar.querySelectorAll('.p-select-label')].map((e) => e.innerText.trim()) : [];
  return {canvas: !!canvas, playing: play ? play.classList.contains('pi-pause') : null, labels};
}""".replace("VIEWER_CANVAS", VIEWER_CANVAS)


@pytest.fixture(scope="module")
def walking_glb(browser_server) -> str:
    """A textured, animated GLB written by the exporter into the server's output folder: a ball that strides
    sideways by 0.3 of its cube over 12 frames, large enough to move many pixels in the preview."""
    field = AnalyticField(radii=(0.2,), num_frames=12, shift=(-0.35, 0.0, 0.0))
    settings = ExportSettings(surface=SurfaceSettings(resolution=32, face_budget=1500), bake=BakeSettings(size=128),
                              turntable=False)
    result = export_4d(field, browser_server.output_dir, "preview_walk", fps=12.0, settings=settings)
    return result.glb.name


def viewer_canvas_png(page) -> np.ndarray:
    element = page.evaluate_handle(f"() => ({VIEWER_CANVAS})()")
    return np.asarray(Image.open(io.BytesIO(element.as_element().screenshot())).convert("RGB"), dtype=np.float32)


def wait_for_viewer(page, server, timeout: float = 120.0) -> dict:
    """The viewer's state once the animation bar shows both selects; fails with what the page and server show."""
    deadline = time.monotonic() + timeout
    state = page.evaluate(VIEWER_STATE)
    while len(state["labels"]) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        state = page.evaluate(VIEWER_STATE)
    assert len(state["labels"]) == 2, (state, page.page_errors, server.log_tail(10))
    return state


def test_preview3d_plays_the_exported_animation(browser, browser_server, walking_glb, screenshots):
    page = open_comfy(browser, browser_server, ready=APP_LOADED, width=1200, height=1000)
    try:
        page.evaluate(RUN_PREVIEW, walking_glb)
        state = wait_for_viewer(page, browser_server)
        assert state["canvas"] and state["playing"] is False, state
        assert state["labels"][1] == walking_glb.removesuffix(".glb"), state  # one clip, named after the file
        page.locator("div.pointer-events-auto .p-select").nth(1).click()
        options = page.locator(".p-select-overlay .p-select-option").all_inner_texts()
        page.keyboard.press("Escape")
        assert [o.strip() for o in options] == [walking_glb.removesuffix(".glb")], options

        page.wait_for_timeout(1500)  # camera damping and first frames settle
        still = [viewer_canvas_png(page), None]
        page.wait_for_timeout(500)
        still[1] = viewer_canvas_png(page)
        assert still[0].std() > 5, "the preview shows no object"
        assert np.abs(still[0] - still[1]).mean() < 0.05, "the preview changes while the animation is paused"

        page.locator("i.pi-play").click()
        page.wait_for_function(f"({VIEWER_STATE})().playing === true")
        frames = []
        for _ in range(4):
            page.wait_for_timeout(250)
            frames.append(viewer_canvas_png(page))
        Image.fromarray(frames[0].astype(np.uint8)).save(screenshots / "preview3d_playing.png")
        changes = [float(np.abs(a - b).mean()) for a, b in zip(frames, frames[1:])]
        assert min(changes) > 0.5, f"the model does not move while playing: mean |Δ| per 250 ms = {changes}"
        assert page.page_errors == []
    finally:
        page.close()
