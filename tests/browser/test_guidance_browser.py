"""The CFG grid and camera editors in the real ComfyUI frontend (headless Chromium).

One page for the whole module; before each test a fresh workflow with SV4D2 Cameras → SV4D2 CFG Grid (+ a core
KSampler) is loaded, so the tests do not depend on their order. It is edited with the mouse the way an artist
would; every check reads what the frontend would queue (`app.graphToPrompt()`) and compares the drawn grid with
`sv4d_lib.guidance`.
"""
from __future__ import annotations

import json

import pytest
import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.guidance import DEFAULT_GRID_SPEC, PRESETS, cfg_grid, grid_from_spec, parse_grid_spec

from headless.browser import APP_LOADED, PACK_LOADED, open_comfy

from .heat_map import assert_heat_map_drawn

GRID_EDITOR = "app.graph.nodes.find(n => n.type === 'SV4D2CFGGrid').widgets.find(w => w.name === 'grid').element.sv4d2Editor"
CAMERA_EDITOR = ("app.graph.nodes.find(n => n.type === 'SV4D2Cameras').widgets.find(w => w.name === 'cameras')"
                 ".element.sv4d2Editor")

BUILD_WORKFLOW = """async () => {
  app.graph.clear();
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  const cameras = LiteGraph.createNode("SV4D2Cameras");
  cameras.pos = [120, 170];
  app.graph.add(cameras);
  const grid = LiteGraph.createNode("SV4D2CFGGrid");
  grid.pos = [620, 170];
  app.graph.add(grid);
  grid.setSize([560, 520]);
  cameras.connect(0, grid, grid.inputs.findIndex((i) => i.name === "cameras"));
  const preview = LiteGraph.createNode("PreviewAny");  // an output node, so the prompt can be queued
  preview.pos = [1220, 170];
  app.graph.add(preview);
  grid.connect(0, preview, 0);
  const sampler = LiteGraph.createNode("KSampler");
  sampler.pos = [120, 640];
  app.graph.add(sampler);
  const workflow = app.graph.serialize();
  await app.loadGraphData(workflow);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
}"""


@pytest.fixture(scope="module")
def module_page(browser, browser_server):
    page = open_comfy(browser, browser_server)
    yield page
    page.close()


@pytest.fixture()
def page(module_page):
    """The module's page with the test workflow freshly loaded."""
    module_page.evaluate(BUILD_WORKFLOW)
    wait_served(module_page)
    return module_page


def wait_served(page):
    """Wait until the heat map (or the error line) shows the widget's current value."""
    page.wait_for_function(f"() => {{ const e = {GRID_EDITOR}; return e.servedText === e.text && !e.inFlight; }}")


def editor(page) -> dict:
    return page.evaluate(f"""() => {{ const e = {GRID_EDITOR};
      return {{text: e.text, reply: e.reply, error: e.error, shape: e.shape, status: e.status.textContent,
               azimuths: e.azimuths, hasErrorClass: e.root.classList.contains('sv4d2-has-error')}}; }}""")


def queued_inputs(page, class_type: str) -> dict:
    """The inputs the frontend would send for the node of that type."""
    return page.evaluate(f"""async () => {{
      const {{output}} = await app.graphToPrompt();
      return Object.values(output).find((n) => n.class_type === '{class_type}').inputs; }}""")


def queued_grid(page) -> dict:
    return json.loads(queued_inputs(page, "SV4D2CFGGrid")["grid"])


def drag(page, start: dict, dx: float, dy: float) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + dx, start["y"] + dy, steps=6)
    page.mouse.up()


def screenshot_nodes(page, path, *node_types: str) -> None:
    """Screenshot of the given nodes (title bars included)."""
    box = page.evaluate("""(types) => {
      const rect = app.canvas.canvas.getBoundingClientRect();
      let box = null;
      for (const node of app.graph.nodes.filter((n) => types.includes(n.type))) {
        const [x, y] = app.canvas.ds.convertOffsetToCanvas([node.pos[0], node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT]);
        const s = app.canvas.ds.scale;
        const b = [rect.left + x, rect.top + y, rect.left + x + node.size[0] * s,
                   rect.top + y + (node.size[1] + LiteGraph.NODE_TITLE_HEIGHT) * s];
        box = box ? [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]), Math.max(box[3], b[3])] : b;
      }
      return {x: box[0] - 8, y: box[1] - 8, width: box[2] - box[0] + 16, height: box[3] - box[1] + 16};
    }""", list(node_types))
    page.mouse.move(5, 890)  # no hover highlight in the picture
    page.wait_for_timeout(200)
    page.screenshot(path=str(path), clip=box)


def grid_tensor(reply: dict) -> torch.Tensor:
    return torch.tensor(reply["scales"], dtype=torch.float32)


def test_editor_replaces_the_text_box_and_keeps_sockets(page):
    info = page.evaluate("""() => {
      const grid = app.graph.nodes.find((n) => n.type === 'SV4D2CFGGrid');
      const sampler = app.graph.nodes.find((n) => n.type === 'KSampler');
      const widget = grid.widgets.find((w) => w.name === 'grid');
      return {inputs: grid.inputs.map((i) => [i.name, i.type, i.link !== null]),
              widget: [widget.type, widget.element.tagName, !!widget.element.querySelector('canvas')],
              sampler: sampler.widgets.map((w) => w.name)};
    }""")
    # the grid is socketless; the optional cameras input stays a linked socket
    assert info["inputs"] == [["model", "MODEL", False], ["positive", "CONDITIONING", False],
                              ["negative", "CONDITIONING", False], ["cameras", "SV4D2_CAMERAS", True]]
    assert info["widget"] == ["SV4D2_CFG_GRID", "DIV", True]
    assert {"seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"} <= set(info["sampler"])


def test_default_is_the_official_4v_grid(page, golden_dir, screenshots):
    golden = json.loads((golden_dir / "cfg_scales.json").read_text())["grids"]
    state = editor(page)
    assert json.loads(state["text"])["preset"] == "official_4v"
    assert torch.equal(grid_tensor(state["reply"]), torch.tensor(golden["4v"]["scale_tv"]))
    assert state["status"].startswith("12 frames × 4 views · scales 1.00–2.00")
    assert assert_heat_map_drawn(page, GRID_EDITOR).tolist() == golden["4v"]["scale_tv"]
    screenshot_nodes(page, screenshots / "cfg_grid_official_4v.png", "SV4D2Cameras", "SV4D2CFGGrid")


def test_8v_preset_reproduces_the_official_grid(page, golden_dir, screenshots):
    golden = json.loads((golden_dir / "cfg_scales.json").read_text())["grids"]
    page.locator(".sv4d2-grid .sv4d2-select").first.select_option("official_8v")
    page.wait_for_function(f"() => JSON.parse({GRID_EDITOR}.text).preset === 'official_8v'")
    wait_served(page)
    assert queued_grid(page) == {"preset": "official_8v", "params": {"min": 1.5, "max": 2.5}, "shape": [5, 8]}
    assert torch.equal(grid_tensor(editor(page)["reply"]), torch.tensor(golden["8v"]["scale_tv"]))
    assert assert_heat_map_drawn(page, GRID_EDITOR).shape == (5, 8)
    screenshot_nodes(page, screenshots / "cfg_grid_official_8v.png", "SV4D2CFGGrid")


def switch_to_ramp(page) -> None:
    page.locator(".sv4d2-grid .sv4d2-select").first.select_option("ramp")
    page.wait_for_function(f"() => JSON.parse({GRID_EDITOR}.text).preset === 'ramp'")
    wait_served(page)


def handle_drag(page, plot: str, param: str, dy: float) -> float:
    """Drag a plot handle vertically; returns the value change the pointer travel corresponds to."""
    geometry = page.evaluate(f"""() => {{
      const e = {GRID_EDITOR};
      const lay = e.layout(e.canvas.clientWidth, e.canvas.clientHeight);
      const [lo, hi] = e.valueRange();
      const zoom = e.canvas.getBoundingClientRect().height / e.canvas.clientHeight;
      return {{point: e.handleClientPoint('{plot}', '{param}'),
               perPixel: (hi - lo) / lay.plots.find((p) => p.kind === '{plot}').h / zoom}}; }}""")
    drag(page, geometry["point"], 0, dy)
    wait_served(page)
    return -dy * geometry["perPixel"]


def test_dragging_ramp_handles_changes_the_queued_grid(page):
    switch_to_ramp(page)
    before = queued_grid(page)
    assert before == {"preset": "ramp", "params": {"min": 1.5, "time_max": 2.0, "view_max": 2.0,
                                                   "time_easing": "linear", "view_easing": "linear"},
                      "shape": [12, 4]}
    for frames, views in ((5, 8), (12, 4)):  # the frames × views inputs reshape the grid
        page.locator(".sv4d2-grid .sv4d2-number").nth(0).fill(str(frames))
        page.locator(".sv4d2-grid .sv4d2-number").nth(1).fill(str(views))
        page.locator(".sv4d2-grid .sv4d2-number").nth(1).dispatch_event("change")
        page.wait_for_function(f"() => JSON.parse({GRID_EDITOR}.text).shape.join() === '{frames},{views}'")
        wait_served(page)

    rise = handle_drag(page, "time", "time_max", -40)
    after = queued_grid(page)
    assert after["params"]["time_max"] == pytest.approx(2.0 + rise, abs=0.011)
    assert after["params"]["time_max"] > 2.2
    drop = handle_drag(page, "view", "view_max", 30)
    after = queued_grid(page)
    assert after["params"]["view_max"] == pytest.approx(2.0 + drop, abs=0.011)
    assert after["params"]["min"] == 1.5 and after["shape"] == [12, 4]
    page.locator(".sv4d2-grid .sv4d2-select").nth(1).select_option("ease_in")
    page.wait_for_function(f"() => JSON.parse({GRID_EDITOR}.text).params.time_easing === 'ease_in'")
    wait_served(page)

    # the heat map is exactly what the sampler will use: the ramp over the connected cameras' azimuths
    state = editor(page)
    assert state["azimuths"] == [0, 60, 120, 180, 240]
    cameras = OrbitCameras((0.0,) * 5, state["azimuths"])
    expected = grid_from_spec(parse_grid_spec(state["text"]), 12, 4, cameras)
    assert torch.equal(grid_tensor(state["reply"]), expected)
    assert torch.equal(expected, cfg_grid("ramp", 12, 4, cameras=cameras, **queued_grid(page)["params"]))


def test_click_drag_overrides_a_cell_and_double_click_clears_it(page, screenshots):
    start = editor(page)["reply"]["scales"][3][1]
    point = page.evaluate(f"() => {GRID_EDITOR}.cellClientPoint(3, 1)")
    drag(page, point, 0, -50)
    wait_served(page)
    overrides = queued_grid(page)["overrides"]
    assert list(overrides) == ["3,1"]
    assert overrides["3,1"] == pytest.approx(start + 0.5, abs=0.011)
    assert editor(page)["reply"]["scales"][3][1] == pytest.approx(overrides["3,1"], abs=1e-6)

    drag(page, page.evaluate(f"() => {GRID_EDITOR}.cellClientPoint(9, 2)"), 0, 60)
    wait_served(page)
    assert set(queued_grid(page)["overrides"]) == {"3,1", "9,2"}
    assert assert_heat_map_drawn(page, GRID_EDITOR)[3][1] == pytest.approx(overrides["3,1"], abs=1e-6)
    screenshot_nodes(page, screenshots / "cfg_grid_ramp_overrides.png", "SV4D2CFGGrid")

    point = page.evaluate(f"() => {GRID_EDITOR}.cellClientPoint(9, 2)")
    page.mouse.dblclick(point["x"], point["y"])
    wait_served(page)
    assert set(queued_grid(page)["overrides"]) == {"3,1"}


def test_values_survive_save_and_reload(page):
    drag(page, page.evaluate(f"() => {GRID_EDITOR}.cellClientPoint(3, 1)"), 0, -50)
    wait_served(page)
    text = editor(page)["text"]
    saved = page.evaluate("() => app.graph.serialize()")
    grid_node = next(n for n in saved["nodes"] if n["type"] == "SV4D2CFGGrid")
    assert grid_node["widgets_values"] == [text]
    page.reload()
    page.wait_for_function(PACK_LOADED)
    page.evaluate("async (workflow) => { await app.loadGraphData(workflow); app.canvas.ds.offset = [0, 0];"
                  " app.canvas.ds.scale = 1; app.canvas.setDirty(true, true); }", saved)
    wait_served(page)
    assert editor(page)["text"] == text
    assert queued_inputs(page, "SV4D2CFGGrid")["grid"] == text  # reaches the backend unchanged
    assert queued_grid(page)["overrides"].keys() == {"3,1"}


def test_bad_hand_edited_grid_shows_the_problem(page, browser_server, screenshots):
    page.locator(".sv4d2-grid .sv4d2-button", has_text="{ }").click()
    bad = '{"preset": "official_4v", "params": {"max": 45}}'
    page.locator(".sv4d2-grid .sv4d2-json").fill(bad)
    wait_served(page)
    state = editor(page)
    assert state["hasErrorClass"]
    assert "CFG grid param 'max' = 45 is outside [0, 30]; use a CFG scale in that range" in state["status"]
    assert queued_inputs(page, "SV4D2CFGGrid")["grid"] == bad  # kept as typed, for the backend to refuse
    screenshot_nodes(page, screenshots / "cfg_grid_error.png", "SV4D2CFGGrid")

    # the backend refuses the same text with the same message
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    reply = browser_server.post("/prompt", {"prompt": prompt})
    grid_id = next(i for i, n in prompt.items() if n["class_type"] == "SV4D2CFGGrid")
    assert "'max' = 45 is outside [0, 30]" in json.dumps(reply.get("node_errors", {}).get(grid_id))

    page.locator(".sv4d2-grid .sv4d2-json").fill('{"preset": "official_4v"}')
    wait_served(page)
    assert not editor(page)["hasErrorClass"]
    page.locator(".sv4d2-grid .sv4d2-button", has_text="{ }").click()


def camera_state(page) -> dict:
    return page.evaluate(f"""() => {{ const e = {CAMERA_EDITOR};
      const node = app.graph.nodes.find((n) => n.type === 'SV4D2Cameras');
      return {{text: e.text, preset: node.widgets.find((w) => w.name === 'preset').value,
               shown: e.effectiveCameras()}}; }}""")


def test_camera_editor_drags_azimuths_and_sets_elevations(page, screenshots):
    assert camera_state(page)["preset"] == "4v"
    target = page.evaluate(f"""() => {{ const e = {CAMERA_EDITOR};
      return {{from: e.markerClientPoint(1), to: (() => {{ const p = e.markerPoint(90);
        const r = e.canvas.getBoundingClientRect();
        return {{x: r.left + p.x * r.width / e.canvas.clientWidth, y: r.top + p.y * r.height / e.canvas.clientHeight}};
      }})()}}; }}""")
    drag(page, target["from"], target["to"]["x"] - target["from"]["x"], target["to"]["y"] - target["from"]["y"])
    state = camera_state(page)
    assert state["preset"] == "custom"
    cameras = json.loads(queued_inputs(page, "SV4D2Cameras")["cameras"])
    assert cameras["azimuths_deg"] == [0, 90, 120, 180, 240]
    assert queued_inputs(page, "SV4D2Cameras")["preset"] == "custom"

    page.locator(".sv4d2-cameras .sv4d2-view-row input[type=range]").nth(3).fill("20")
    cameras = json.loads(queued_inputs(page, "SV4D2Cameras")["cameras"])
    assert cameras["elevations_deg"] == [0, 0, 0, 20, 0]

    # the connected grid editor measures view distance from the new azimuths
    page.wait_for_function(f"() => {GRID_EDITOR}.azimuths?.[1] === 90")
    wait_served(page)
    page.wait_for_function(f"() => {GRID_EDITOR}.reply.view_distance[0] === 0.5")
    screenshot_nodes(page, screenshots / "camera_editor.png", "SV4D2Cameras", "SV4D2CFGGrid")

    page.locator(".sv4d2-cameras .sv4d2-button", has_text="8-view official").click()
    page.wait_for_function(f"() => {CAMERA_EDITOR}.effectiveCameras().azimuths_deg.length === 9")
    state = camera_state(page)
    assert state["preset"] == "8v"
    assert state["shown"]["azimuths_deg"] == [0, 30, 75, 120, 165, 210, 255, 300, 330]
    assert json.loads(state["text"]) == state["shown"]


def test_grid_editor_added_by_hand_draws_its_heat_map(page):
    """As a user adds a node from the library: the widget is built before the node joins the graph (newer
    frontends throw from getInputNode then); the heat map is drawn all the same, with no page error."""
    errors_before = len(page.page_errors)
    page.evaluate("""() => {
      app.graph.clear();
      const grid = LiteGraph.createNode("SV4D2CFGGrid");
      grid.pos = [100, 100];
      app.graph.add(grid);
      grid.setSize([560, 520]);
      app.canvas.ds.offset = [0, 0];
      app.canvas.ds.scale = 1;
      app.canvas.setDirty(true, true);
    }""")
    wait_served(page)
    assert assert_heat_map_drawn(page, GRID_EDITOR).shape == (12, 4)
    assert page.page_errors[errors_before:] == []


def test_grid_editor_recovers_from_a_failed_refresh(page):
    """Whatever throws while the grid is fetched, the editor says so and the next edit draws again."""
    state = page.evaluate(f"""async () => {{
      const e = {GRID_EDITOR};
      const original = e.node.getInputNode;
      e.node.getInputNode = () => {{ throw new Error("lookup failed"); }};
      await e.refresh();
      const failed = {{error: e.error, inFlight: e.inFlight}};
      e.node.getInputNode = original;
      e.setText('{{"preset": "official_8v"}}');
      return failed;
    }}""")
    assert "lookup failed" in state["error"] and state["inFlight"] is False, state
    wait_served(page)
    assert assert_heat_map_drawn(page, GRID_EDITOR).shape == (5, 8)


def test_no_errors_from_the_pack_scripts(page):
    assert not [e for e in page.page_errors if "sv4d2" in e.lower() or "/extensions/" in e]


def test_high_dpi_canvas_is_sharp_and_follows_resizing(browser, browser_server):
    page = open_comfy(browser, browser_server, scale=2.0)
    try:
        page.evaluate(BUILD_WORKFLOW)
        wait_served(page)
        sizes = page.evaluate(f"""async () => {{
          const e = {GRID_EDITOR};
          const before = [e.canvas.width, e.canvas.clientWidth, e.canvas.height, e.canvas.clientHeight];
          const node = app.graph.nodes.find((n) => n.type === 'SV4D2CFGGrid');
          node.setSize([node.size[0] + 200, node.size[1] + 100]);
          app.canvas.setDirty(true, true);
          await new Promise((r) => setTimeout(r, 500));
          return {{before, after: [e.canvas.width, e.canvas.clientWidth, e.canvas.height, e.canvas.clientHeight]}}; }}""")
        for width, css_width, height, css_height in sizes.values():
            assert width == round(css_width * 2) and height == round(css_height * 2)
        assert sizes["after"][1] > sizes["before"][1] + 150
    finally:
        page.close()


def test_preview_route_serves_presets_and_python_errors(browser_server):
    info = browser_server.get("/sv4d2/cfg_grid")
    assert info["presets"] == PRESETS and info["default"] == DEFAULT_GRID_SPEC and info["range"] == [0, 30]
    reply = browser_server.post("/sv4d2/cfg_grid", {"grid": '{"preset": "official_8v"}', "num_frames": 5,
                                                    "num_views": 8})
    assert torch.equal(grid_tensor(reply), cfg_grid("official_8v", 5, 8))
    bad = browser_server.post("/sv4d2/cfg_grid", {"grid": '{"preset": "ramp", "overrides": {"9,0": 2}}',
                                                  "num_frames": 5, "num_views": 8})
    assert bad["http_status"] == 400 and "override '9,0' lies outside the 5 frames × 8 views grid" in bad["error"]
    assert browser_server.post("/sv4d2/cfg_grid", {"grid": 12})["http_status"] == 400


def test_without_the_editor_the_grid_is_a_plain_string_input(browser, browser_server):
    """If the pack's script does not load, the grid input is a STRING socket a core text node feeds unchanged."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.route("**/cfg_grid_widget.js", lambda route: route.abort())
        page.goto(browser_server.url)
        page.wait_for_function(APP_LOADED, timeout=120_000)
        queued = page.evaluate("""async () => {
          app.graph.clear();
          const grid = LiteGraph.createNode("SV4D2CFGGrid");
          app.graph.add(grid);
          const text = LiteGraph.createNode("PrimitiveStringMultiline");
          app.graph.add(text);
          text.widgets[0].value = '{"preset": "official_8v"}';
          const slot = grid.inputs.findIndex((i) => i.name === "grid");
          text.connect(0, grid, slot);
          const {output} = await app.graphToPrompt();
          const gridNode = Object.values(output).find((n) => n.class_type === "SV4D2CFGGrid");
          return {input: grid.inputs[slot]?.type, widgets: (grid.widgets ?? []).map((w) => w.type),
                  text: output[gridNode.inputs.grid[0]].inputs.value};
        }""")
        assert queued["input"] == "STRING" and "SV4D2_CFG_GRID" not in queued["widgets"]
        assert queued["text"] == '{"preset": "official_8v"}'
    finally:
        page.close()
