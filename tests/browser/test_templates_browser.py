"""Every shipped template, opened as a new user opens it (served by core from the pack's example_workflows/,
default frontend settings, workflow validation on), in the classic canvas and with Nodes 2.0 (the Vue node
renderer, setting `Comfy.VueNodes.Enabled`): no alert or toast, no missing node, and every SV4D2 editor has a
size and answers a mouse drag. Each test loads its own template, so the tests do not depend on their order."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from headless.browser import PACK_LOADED, open_comfy
from headless.server import REPO

from .conftest import start_browser_server
from .heat_map import assert_heat_map_drawn

TEMPLATES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
NEW_USER = {"Comfy.TutorialCompleted": True}  # otherwise the defaults a fresh install has
PACK_FOLDER = "sv4d2"  # the pack's folder in custom_nodes (scripts/bootstrap_host.sh), the template module name

OPEN_TEMPLATE = """async (name) => {
  app.graph.clear();
  const response = await fetch(`api/workflow_templates/${PACK_FOLDER}/${encodeURIComponent(name)}.json`);
  if (!response.ok) return {status: response.status};
  const workflow = await response.json();
  await app.loadGraphData(workflow, true, true, name);  // as the template browser does
  await new Promise((resolve) => setTimeout(resolve, 1500));  // toasts, dialogs and DOM widgets settle
  const known = (type) => !!LiteGraph.registered_node_types[type];
  return {
    status: response.status,
    saved: workflow.nodes.length,
    loaded: app.graph.nodes.length,
    unknown: app.graph.nodes.filter((n) => !known(n.type)).map((n) => n.type),
    toasts: [...document.querySelectorAll('.p-toast-message')].map((e) => e.innerText.trim()),
    dialogs: [...document.querySelectorAll('.p-dialog')].filter((e) => e.offsetParent !== null)
      .map((e) => e.innerText.trim().slice(0, 300)),
    editors: app.graph.nodes.flatMap((n) => (n.widgets ?? []).filter((w) => w.element?.sv4d2Editor)
      .map((w) => [n.id, w.name, w.type])),
  };
}""".replace("${PACK_FOLDER}", PACK_FOLDER)

# Bring one node's editor on screen at zoom 1 and report its size in client pixels.
SHOW_EDITOR = """async ([nodeId, widgetName]) => {
  const node = app.graph.getNodeById(nodeId);
  app.canvas.ds.scale = 1;
  app.canvas.centerOnNode(node);
  app.canvas.setDirty(true, true);
  await new Promise((resolve) => setTimeout(resolve, 600));
  const element = node.widgets.find((w) => w.name === widgetName).element;
  const rect = element.getBoundingClientRect();
  const canvas = element.sv4d2Editor.canvas.getBoundingClientRect();
  return {width: rect.width, height: rect.height, canvasWidth: canvas.width, canvasHeight: canvas.height,
          visible: element.checkVisibility?.() ?? element.offsetParent !== null};
}"""


@pytest.fixture(scope="module")
def new_user_server(chromium, tmp_path_factory):
    with start_browser_server(tmp_path_factory.mktemp("new_user"), NEW_USER) as server:
        yield server


@pytest.fixture(scope="module", params=[False, True], ids=["classic", "nodes2"])
def page(request, browser, new_user_server):
    """One page per renderer (chosen in the stored settings before the page loads, as a user's saved choice is;
    switching it live shows an info toast); each test clears the graph and loads its own template."""
    request_settings = urllib.request.Request(f"{new_user_server.url}/settings/Comfy.VueNodes.Enabled",
                                              data=json.dumps(request.param).encode(), method="POST")
    urllib.request.urlopen(request_settings, timeout=30).close()
    page = open_comfy(browser, new_user_server, ready=PACK_LOADED, width=1600, height=1000)
    assert page.evaluate("() => app.extensionManager.setting.get('Comfy.VueNodes.Enabled')") is request.param
    page.vue_nodes = request.param
    yield page
    page.close()


def open_template(page, name: str) -> dict:
    page.evaluate("() => document.querySelectorAll('.p-toast-message-close-button, .p-toast-close-button')"
                  ".forEach((b) => b.click())")
    result = page.evaluate(OPEN_TEMPLATE, name)
    assert result["status"] == 200, f"core does not serve {name}.json from example_workflows/"
    return result


def test_core_lists_every_template_with_its_thumbnail(new_user_server):
    assert sorted(new_user_server.get("/workflow_templates")[PACK_FOLDER]) == TEMPLATES
    assert len(TEMPLATES) >= 7 and all(name.startswith("SV4D 2.0 - ") for name in TEMPLATES)
    for name in TEMPLATES:  # the template browser shows api/workflow_templates/<pack>/<name>.jpg for a pack's template
        url = f"{new_user_server.url}/api/workflow_templates/{PACK_FOLDER}/{urllib.parse.quote(name)}.jpg"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.headers["Content-Type"] == "image/jpeg" and len(response.read()) > 5000, name


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_opens_clean_with_sized_editors(page, name):
    errors_before = len(page.page_errors)
    result = open_template(page, name)
    assert result["toasts"] == [] and result["dialogs"] == [], result
    assert result["unknown"] == [] and result["loaded"] == result["saved"], result
    if page.vue_nodes:  # the Vue renderer really drew the nodes (DOM nodes, not canvas drawings)
        assert page.evaluate("() => document.querySelectorAll('[data-node-id]').length") >= result["loaded"] - 1
    for node_id, widget, kind in result["editors"]:
        size = page.evaluate(SHOW_EDITOR, [node_id, widget])
        assert size["visible"] and size["width"] > 200 and size["height"] > 200, (name, widget, size)
        assert size["canvasWidth"] > 100 and size["canvasHeight"] > 60, (name, widget, size)
        if kind == "SV4D2_CFG_GRID":  # the heat map is drawn, cell by cell, in the served scales' colours
            editor = editor_expression(node_id, widget)
            page.wait_for_function(f"() => {{ const e = {editor}; return e.servedText === e.text && !e.inFlight; }}")
            assert_heat_map_drawn(page, editor)
    assert page.page_errors[errors_before:] == []


def drag(page, start: dict, dx: float, dy: float) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + dx, start["y"] + dy, steps=8)
    page.mouse.up()


def editor_expression(node_id: int, widget: str) -> str:
    return f"app.graph.getNodeById({node_id}).widgets.find((w) => w.name === '{widget}').element.sv4d2Editor"


def editor_of(page, node_type: str) -> list:
    return page.evaluate("""(type) => { const node = app.graph.nodes.find((n) => n.type === type);
      return [node.id, node.widgets.find((w) => w.element?.sv4d2Editor).name]; }""", node_type)


def test_camera_editor_answers_a_drag(page):
    open_template(page, "SV4D 2.0 - 4 views")
    node_id, widget = editor_of(page, "SV4D2Cameras")
    page.evaluate(SHOW_EDITOR, [node_id, widget])
    editor = editor_expression(node_id, widget)
    drag(page, page.evaluate(f"() => {editor}.markerClientPoint(1)"), 60, -30)
    state = page.evaluate(f"""() => ({{text: {editor}.text, preset: app.graph.getNodeById({node_id}).widgets
      .find((w) => w.name === 'preset').value}})""")
    assert state["preset"] == "custom", state
    assert json.loads(state["text"])["azimuths_deg"][1] != 60, state


def test_grid_editor_answers_a_drag(page):
    open_template(page, "SV4D 2.0 - 4 views")
    node_id, widget = editor_of(page, "SV4D2SampleNVVS")
    page.evaluate(SHOW_EDITOR, [node_id, widget])
    editor = editor_expression(node_id, widget)
    page.wait_for_function(f"() => {editor}.reply")  # the heat map was served
    drag(page, page.evaluate(f"() => {editor}.cellClientPoint(3, 1)"), 0, -50)
    text = page.evaluate(f"() => {editor}.text")
    assert list(json.loads(text).get("overrides", {})) == ["3,1"], text


def test_screenshot_in_both_renderers(page, screenshots):
    """A picture of the 4-view template per renderer (temporary folder unless SV4D2_SCREENSHOTS is set)."""
    open_template(page, "SV4D 2.0 - 4 views")
    node_id, widget = editor_of(page, "SV4D2SampleNVVS")
    page.evaluate(SHOW_EDITOR, [node_id, widget])
    path = Path(screenshots) / f"template_4views_{'nodes2' if page.vue_nodes else 'classic'}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def test_dense_template_shows_the_camera_plan_presets(page):
    """The dense 4D template opens clean (also checked above for every template); its camera editors offer the
    planning presets, and each shows its layout on the orbit with the views of each model pass in its colour."""
    result = open_template(page, "SV4D 2.0 - dense 4D")
    assert result["toasts"] == [] and result["dialogs"] == [], result
    node_id = page.evaluate("""() => app.graph.nodes.find((n) => n.type === 'SV4D2Cameras'
      && n.widgets.find((w) => w.name === 'preset').value === '8v').id""")
    widget = "cameras"
    page.evaluate(SHOW_EDITOR, [node_id, widget])
    editor = f"app.graph.getNodeById({node_id}).widgets.find((w) => w.name === '{widget}').element.sv4d2Editor"
    buttons = page.evaluate(f"() => [...{editor}.toolbar.querySelectorAll('.sv4d2-preset')].map((b) => b.innerText)")
    assert buttons == ["4-view official", "8-view official", "dense (both)", "orthogonal + elevated"]

    def pick(label: str) -> dict:
        page.evaluate(f"""() => [...{editor}.toolbar.querySelectorAll('.sv4d2-preset')]
          .find((b) => b.innerText === {json.dumps(label)}).click()""")
        return page.evaluate(f"""() => {{ const e = {editor};
          const shown = e.effectiveCameras();
          return {{preset: app.graph.getNodeById({node_id}).widgets.find((w) => w.name === 'preset').value,
                   shown, colours: shown.azimuths_deg.map((_, i) => e.markerColour(i)), status: e.status.innerText,
                   radii: shown.azimuths_deg.map((_, i) => {{ const p = e.markerPoint(shown.azimuths_deg[i],
                     undefined, shown.elevations_deg[i]); const g = e.geometry();
                     return Math.hypot(p.x - g.cx, p.y - g.cy) / g.radius; }})}}; }}""")

    dense = pick("dense (both)")
    assert dense["preset"] == "dense" and len(dense["shown"]["azimuths_deg"]) == 12
    both, four, eight = dense["colours"][4], dense["colours"][2], dense["colours"][1]  # 120°, 60°, 30°
    assert len({both, four, eight}) == 3 and "SV4D2 Merge Views" in dense["status"]
    ortho = pick("orthogonal + elevated")
    assert ortho["preset"] == "ortho_elevated"
    assert ortho["shown"]["elevations_deg"] == [0] * 4 + [30] * 5
    # the top view draws the raised views nearer the centre (cos 30°)
    assert ortho["radii"][1] == pytest.approx(1.0) and ortho["radii"][5] == pytest.approx(0.866, abs=1e-3)


# Words a user types for what a node does; web/node_library.js gives them to the frontend as search aliases.
ALIAS_SEARCHES = {"novel view synthesis": "SV4D2 Sample NVVS", "dynamic nerf": "SV4D2 Fit 4D",
                  "animated mesh": "SV4D2 Export 4D Mesh", "guidance scale": "SV4D2 CFG Grid"}


def frontend_version(page) -> tuple[int, ...]:
    return tuple(int(x) for x in page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__").split(".")[:3])


@pytest.mark.parametrize("query", ALIAS_SEARCHES)
def test_search_finds_nodes_by_what_they_do(page, query, screenshots):
    """Every SV4D2 node definition carries its search aliases; frontends that search them (1.4x on; 1.32.9 matches
    names only) list the node for a query that names none of its words, as a user types it on the canvas."""
    aliases = page.evaluate("() => LiteGraph.registered_node_types.SV4D2SampleNVVS.nodeData.search_aliases")
    assert "novel view synthesis" in aliases and "sv4d" in aliases, aliases
    if frontend_version(page) < (1, 40, 0):
        return
    page.evaluate("() => { app.graph.clear(); app.extensionManager.command.execute('Workspace.SearchBox.Toggle'); }")
    search = page.get_by_role("combobox", name="Add a node...")
    search.fill(query)
    listbox = search.get_attribute("aria-controls")
    page.wait_for_function(f"() => document.getElementById('{listbox}')?.innerText.includes({json.dumps(ALIAS_SEARCHES[query])})",
                           timeout=10_000)
    if query == "novel view synthesis" and not page.vue_nodes:
        page.screenshot(path=str(Path(screenshots) / "search_alias.png"))
    page.keyboard.press("Escape")


def test_node_info_shows_the_help_page(page, screenshots):
    """Frontends with a node info panel (1.4x on) show the pack's help page (web/docs/<node id>.md) for a selected
    SV4D2 node."""
    if frontend_version(page) < (1, 40, 0):
        return
    page.evaluate("""() => { app.graph.clear(); const node = LiteGraph.createNode('SV4D2CFGGrid'); node.pos = [100, 150];
      app.graph.add(node); app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1; app.canvas.selectNode(node);
      app.canvas.setDirty(true, true); }""")
    page.get_by_role("button", name="Node Info").click()
    page.get_by_text("part of SV4D 2.0 for ComfyUI").first.wait_for(timeout=15_000)
    page.screenshot(path=str(Path(screenshots) / f"help_panel_{'nodes2' if page.vue_nodes else 'classic'}.png"))
    page.evaluate("() => app.canvas.deselectAll?.()")
