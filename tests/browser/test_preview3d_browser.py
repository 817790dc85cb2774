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

# The Preview 3D widget's animation controls, found by what they do rather than by one frontend's markup: the
# nearest ancestor of the viewer canvas holding a play/pause control. Newer frontends (1.4x-1.5x) label their
# buttons ("Play"/"Pause", "Animation clip"); 1.32.9 shows PrimeVue icons and selects (speed, then clip). The play
# and clip controls are tagged so that playwright can click them; the clip list is the popup the clip control
# names in aria-controls.
VIEWER_STATE = """() => {
  const viewerCanvas = VIEWER_CANVAS;
  const canvas = viewerCanvas();
  const findPlay = (e) => e.querySelector('button[aria-label="Play"], button[aria-label="Pause"], i.pi-play, i.pi-pause');
  let root = canvas;
  while (root && !findPlay(root)) root = root.parentElement;
  if (!root) return {canvas: !!canvas, playing: null, clip: null};
  const control = findPlay(root);
  const play = control.closest('button');
  const playing = control.tagName === 'BUTTON' ? control.getAttribute('aria-label') === 'Pause'
                                               : control.classList.contains('pi-pause');
  const clip = root.querySelector('button[aria-label="Animation clip"]')
    ?? [...root.querySelectorAll('[role="combobox"]')].at(-1);
  play.dataset.sv4d2Test = 'play';
  if (clip) clip.dataset.sv4d2Test = 'clip';
  return {canvas: !!canvas, playing, clip: clip ? clip.innerText.trim() : null};
}""".replace("VIEWER_CANVAS", VIEWER_CANVAS)

CLIP_OPTIONS = """() => {
  const popup = document.getElementById(document.querySelector('[data-sv4d2-test="clip"]')?.getAttribute('aria-controls'));
  if (!popup) return null;
  const options = popup.querySelectorAll('[role="option"]');
  return [...(options.length ? options : popup.querySelectorAll('button'))].map((e) => e.innerText.trim());
}"""


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
    """The viewer's state once the animation controls show a clip; fails with what the page and server show."""
    deadline = time.monotonic() + timeout
    state = page.evaluate(VIEWER_STATE)
    while not state["clip"] and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        state = page.evaluate(VIEWER_STATE)
    assert state["clip"], (state, page.page_errors, server.log_tail(10))
    return state


def test_preview3d_plays_the_exported_animation(browser, browser_server, walking_glb, screenshots):
    page = open_comfy(browser, browser_server, ready=APP_LOADED, width=1200, height=1000)
    try:
        page.evaluate(RUN_PREVIEW, walking_glb)
        state = wait_for_viewer(page, browser_server)
        assert state["canvas"] and state["playing"] is False, state
        assert state["clip"] == walking_glb.removesuffix(".glb"), state  # one clip, named after the file
        page.locator('[data-sv4d2-test="clip"]').click()
        page.wait_for_function(f"({CLIP_OPTIONS})()?.length > 0")
        options = page.evaluate(CLIP_OPTIONS)
        page.keyboard.press("Escape")
        assert options == [walking_glb.removesuffix(".glb")], options

        page.wait_for_timeout(1500)  # camera damping and first frames settle
        still = [viewer_canvas_png(page), None]
        page.wait_for_timeout(500)
        still[1] = viewer_canvas_png(page)
        assert still[0].std() > 5, "the preview shows no object"
        assert np.abs(still[0] - still[1]).mean() < 0.05, "the preview changes while the animation is paused"

        page.locator('[data-sv4d2-test="play"]').click()
        page.wait_for_function(f"({VIEWER_STATE})().playing === true")
        # Software WebGL on a busy machine may skip frames: sample 2 s and ask for motion in most intervals
        # (a paused or frozen model changes < 0.05, see above; the ball strides across ~0.5 of the view in 1 s)
        frames = []
        for _ in range(9):
            page.wait_for_timeout(250)
            frames.append(viewer_canvas_png(page))
        Image.fromarray(frames[0].astype(np.uint8)).save(screenshots / "preview3d_playing.png")
        changes = [float(np.abs(a - b).mean()) for a, b in zip(frames, frames[1:])]
        moving = sum(change > 0.15 for change in changes)
        assert moving >= 5, f"the model does not move while playing: mean |Δ| per 250 ms = {changes}"
        assert page.page_errors == []
    finally:
        page.close()
