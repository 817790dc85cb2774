"""The headless runner: UI→API conversion against real editor workflows, and real runs in ComfyUI."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headless.convert import WorkflowError, apply_overrides, ui_to_api

REPO = Path(__file__).resolve().parents[2]

# Validation errors that only mean "this machine lacks the template's model/image files".
MISSING_FILE_ERRORS = {"value_not_in_list", "custom_validation_failed"}


def _node(node_id, kind, inputs=(), outputs=(), widgets=None, mode=0, title=None):
    node = {"id": node_id, "type": kind, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": node_id,
            "mode": mode, "inputs": list(inputs), "outputs": list(outputs), "properties": {}}
    if widgets is not None:
        node["widgets_values"] = widgets
    if title:
        node["title"] = title
    return node


def core_workflow() -> dict:
    """An editor-format graph of core nodes using a PrimitiveNode, a Reroute, a bypassed and a muted node."""
    nodes = [
        _node(1, "EmptyImage", inputs=[{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 1}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2, 6]}], widgets=[64, 48, 2, 0]),
        _node(2, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [1], "widget": {"name": "width"}}],
              widgets=[32, "fixed"]),
        _node(3, "Reroute", inputs=[{"name": "", "type": "*", "link": 2}],
              outputs=[{"name": "", "type": "IMAGE", "links": [3]}]),
        _node(4, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 3}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [4]}], mode=4),
        _node(5, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 4}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [5]}]),
        _node(6, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 5}], widgets=["core_smoke"],
              title="Save"),
        _node(7, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 6}], widgets=["muted"], mode=2),
    ]
    links = [[1, 2, 0, 1, 0, "INT"], [2, 1, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 4, 0, 5, 0, "IMAGE"],
             [5, 5, 0, 6, 0, "IMAGE"], [6, 1, 0, 7, 0, "IMAGE"]]
    return {"last_node_id": 7, "last_link_id": 6, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.object_info()


def test_core_workflow_converts_like_the_editor(object_info):
    prompt = ui_to_api(core_workflow(), object_info)
    assert set(prompt) == {"1", "5", "6"}  # editor-only, bypassed and muted nodes are gone
    assert prompt["1"]["inputs"] == {"width": 32, "height": 48, "batch_size": 2, "color": 0}
    assert prompt["5"]["inputs"] == {"image": ["1", 0]}  # through the reroute and the bypassed node
    assert prompt["6"]["inputs"] == {"filename_prefix": "core_smoke", "images": ["5", 0]}
    apply_overrides(prompt, ["Save.filename_prefix=renamed", "#1.height=16"], object_info)
    assert prompt["6"]["inputs"]["filename_prefix"] == "renamed" and prompt["1"]["inputs"]["height"] == 16


@pytest.mark.parametrize("mutate, message", [
    (lambda w: w["nodes"].append(_node(9, "NoSuchNode")), "unknown node type 'NoSuchNode'"),
    (lambda w: w["links"].pop(3), "link 4, which does not exist"),
    (lambda w: w["links"].__setitem__(0, [1, 42, 0, 1, 0, "INT"]), "missing node 42"),
    (lambda w: w.pop("nodes"), "not a ComfyUI workflow"),
    (lambda w: w["nodes"][0]["widgets_values"].insert(0, "wide"), "widget value 'wide' for input 'width' is not a INT"),
    (lambda w: w["nodes"][5]["widgets_values"].__setitem__(0, 7), "widget value 7 for input 'filename_prefix'"),
])
def test_bad_workflows_name_the_problem(object_info, mutate, message):
    workflow = core_workflow()
    mutate(workflow)
    with pytest.raises(WorkflowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ui_to_api(workflow, object_info)


def test_values_of_widgets_the_editor_adds_itself_are_ignored(object_info):
    """Newer editors save values of frontend-only widgets after a node's own (PreviewAny's text preview and its
    Markdown toggle, 3 values with frontend 1.35.9); the editor never queues them, nor does the runner."""
    workflow = core_workflow()
    workflow["nodes"][0]["widgets_values"] += ["a preview", None]
    workflow["nodes"].append(_node(8, "PreviewAny", inputs=[{"name": "source", "type": "*", "link": 7}],
                                   widgets=["[64, 48]", "[64, 48]", False], title="Show"))
    workflow["links"].append([7, 1, 0, 8, 0, "IMAGE"])
    prompt = ui_to_api(workflow, object_info)
    assert prompt["8"]["inputs"] == {"source": ["1", 0]}
    assert prompt["1"]["inputs"] == {"width": 32, "height": 48, "batch_size": 2, "color": 0}


def test_inputs_gained_after_saving_get_their_defaults(object_info):
    """A workflow saved before a node gained inputs has fewer widget values: the rest get their declared
    defaults, as the editor fills them (e.g. ImageScaleToTotalPixels.resolution_steps, new in core 0.8.0)."""
    workflow = core_workflow()
    workflow["nodes"][0]["widgets_values"] = [64]  # EmptyImage as if it had had only a width
    workflow["nodes"][5]["widgets_values"] = [None]  # a null value is no value either
    prompt = ui_to_api(workflow, object_info)
    assert prompt["1"]["inputs"] == {"width": 32, "height": 512, "batch_size": 1, "color": 0}
    assert prompt["6"]["inputs"]["filename_prefix"] == "ComfyUI"
    scale = _node(9, "ImageScaleToTotalPixels", widgets=["nearest-exact", 1.0])  # its 0.3.75 inputs
    scaled = ui_to_api({"nodes": [scale], "links": []}, object_info)["9"]["inputs"]
    declared = object_info["ImageScaleToTotalPixels"]["input"]["required"]
    assert set(scaled) == set(declared) - {"image"} and scaled["megapixels"] == 1.0  # image: a socket
    if "resolution_steps" in declared:
        assert scaled["resolution_steps"] == declared["resolution_steps"][1]["default"]


def test_templates_resaved_by_a_newer_editor_still_convert(object_info, comfy_host):
    """The pack's templates with a PreviewAny as a 1.3x editor saves it (3 frontend-only values) convert into a
    prompt ComfyUI accepts."""
    checked = 0
    for path in sorted((REPO / "example_workflows").glob("*.json")):
        workflow = json.loads(path.read_text())
        previews = [n for n in workflow["nodes"] if n["type"] == "PreviewAny"]
        for node in previews:
            node["widgets_values"] = ["21.4 dB", "21.4 dB", False]
        if not previews:
            continue
        ok, error, node_errors = comfy_host.validate(ui_to_api(workflow, object_info))
        assert ok, (path.name, error, node_errors)
        checked += 1
    assert checked >= 2


def test_bad_overrides_name_the_problem(object_info):
    prompt = ui_to_api(core_workflow(), object_info)
    for override, message in [("Nope.width=3", "no node titled 'Nope'"), ("Save.nope=3", "has no input 'nope'"),
                              ("width=3", "must look like")]:
        with pytest.raises(WorkflowError, match=message):
            apply_overrides(prompt, [override], object_info)


# Newer core (≈0.38+) declares Preview3D.model_file as a multi-type input: a STRING widget that also takes 3D-file
# sockets; /object_info then shows the comma-joined type with an explicit widgetType.
MULTI_TYPE_PREVIEW3D = {
    "input": {"required": {"model_file": ["STRING,File3D,File3DGLB", {"widgetType": "STRING", "default": ""}]},
              "optional": {"camera_info": ["LOAD3D_CAMERA", {}]}},
    "input_order": {"required": ["model_file"], "optional": ["camera_info"]},
    "output": [], "output_name": [], "display_name": "Preview 3D",
}
EXPORTER = {"input": {"required": {"filename_prefix": ["STRING", {"default": "mesh"}]}},
            "input_order": {"required": ["filename_prefix"]}, "output": ["STRING"], "output_name": ["model_file"]}


def test_multi_type_inputs_with_a_widget_count_as_widgets():
    object_info = {"Preview3D": MULTI_TYPE_PREVIEW3D, "Exporter": EXPORTER}
    typed = _node(1, "Preview3D", widgets=["sv4d2/asset_00001_.glb"])
    exporter = _node(2, "Exporter", outputs=[{"name": "model_file", "type": "STRING", "links": [1]}],
                     widgets=["sv4d2/asset"])
    linked = _node(3, "Preview3D", inputs=[{"name": "model_file", "type": "STRING,File3D,File3DGLB",
                                            "widget": {"name": "model_file"}, "link": 1}], widgets=[""])
    workflow = {"nodes": [typed, exporter, linked], "links": [[1, 2, 0, 3, 0, "STRING"]]}
    prompt = ui_to_api(workflow, object_info)
    assert prompt["1"]["inputs"] == {"model_file": "sv4d2/asset_00001_.glb"}  # the typed path is kept
    assert prompt["3"]["inputs"] == {"model_file": ["2", 0]}  # the link overrides the widget


def _templates() -> list[Path]:
    import comfyui_workflow_templates_core  # noqa: F401  (the templates ship with ComfyUI's requirements)

    site = Path(comfyui_workflow_templates_core.__file__).parent.parent
    return sorted(Path(p) for p in glob.glob(str(site / "comfyui_workflow_templates_*" / "templates" / "*.json")))


def test_editor_templates_convert_and_validate(object_info, comfy_host):
    """Every official template made only of known nodes converts into a prompt ComfyUI itself accepts,
    apart from the model/image files this machine does not have."""
    checked = 0
    for path in _templates():
        workflow = json.loads(path.read_text())
        if not isinstance(workflow, dict) or "nodes" not in workflow or workflow.get("definitions"):
            continue
        if any(n["type"] not in object_info and n["type"] not in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
               for n in workflow["nodes"]):
            continue
        if any(object_info.get(n["type"], {}).get("api_node") for n in workflow["nodes"]):
            continue  # paid API nodes (loaded since the server no longer gets --disable-api-nodes) change often
        prompt = ui_to_api(workflow, object_info)
        ok, error, node_errors = comfy_host.validate(prompt)
        for node_id, info in node_errors.items():
            kinds = {e["type"] for e in info["errors"]}
            assert kinds <= MISSING_FILE_ERRORS, f"{path.name} node {node_id} ({info['class_type']}): {info['errors']}"
        checked += 1
    assert checked >= 20, f"only {checked} templates were usable"


def _run_headless(workflow: dict | str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "workflow.json"
    path.write_text(workflow if isinstance(workflow, str) else json.dumps(workflow))
    return subprocess.run([sys.executable, "-m", "headless", str(path), "--output", str(tmp_path / "out"), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_runner_executes_editor_workflow_in_real_comfyui(tmp_path):
    result = _run_headless(core_workflow(), tmp_path, "--set", "Save.filename_prefix=renamed")
    assert result.returncode == 0, result.stderr + result.stdout
    files = sorted((tmp_path / "out").glob("renamed_*.png"))
    assert len(files) == 2 and not list((tmp_path / "out").glob("muted*"))
    pixels = np.asarray(Image.open(files[0]))
    assert pixels.shape == (48, 32, 3) and (pixels == 255).all()  # black inverted once: the bypass was skipped
    assert "running #6 Save" in result.stdout


def test_relative_folders_are_the_callers(tmp_path):
    """--input-dir, --output and the workflow path given relative to the caller's working directory."""
    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 8), (255, 0, 0)).save(tmp_path / "in" / "red.png")
    workflow = {"nodes": [
        _node(1, "LoadImage", outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}], widgets=["red.png", "image"]),
        _node(2, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 1}], widgets=["relative"]),
    ], "links": [[1, 1, 0, 2, 0, "IMAGE"]]}
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    result = subprocess.run([sys.executable, "-m", "headless", "workflow.json", "--output", "out", "--input-dir", "in"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    saved = list((tmp_path / "out").glob("relative_*.png"))
    assert len(saved) == 1 and np.asarray(Image.open(saved[0]))[0, 0].tolist() == [255, 0, 0]


def test_runner_failures_exit_nonzero_and_write_nothing(tmp_path):
    result = _run_headless("[1, 2, 3]", tmp_path)
    assert result.returncode == 2 and "is not a ComfyUI workflow" in result.stderr

    workflow = core_workflow()
    workflow["nodes"][5]["widgets_values"] = ["../outside"]  # SaveImage refuses to write outside its folder
    result = _run_headless(workflow, tmp_path)
    assert result.returncode == 1
    assert "error in node #6 (Save, SaveImage)" in result.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_editor_graph_round_trips_through_the_converter(object_info):
    from headless.editor import EditorGraph

    graph = EditorGraph(object_info)
    image = graph.add("EmptyImage", width=24, color=7)
    inverted = graph.add("ImageInvert", image=image.out("IMAGE"))
    graph.add("SaveImage", title="Save", images=inverted.out(0), filename_prefix="x")
    graph.add("RandomNoise", title="Noise", noise_seed=5)
    workflow = graph.to_json()
    noise = next(n for n in workflow["nodes"] if n["type"] == "RandomNoise")
    assert noise["widgets_values"] == [5, "fixed"]  # the seed carries its control value
    prompt = ui_to_api(workflow, object_info)
    assert prompt["1"]["inputs"] == {"width": 24, "height": 512, "batch_size": 1, "color": 7}
    assert prompt["2"]["inputs"] == {"image": ["1", 0]}
    assert prompt["3"]["inputs"] == {"images": ["2", 0], "filename_prefix": "x"}
    assert prompt["4"]["inputs"] == {"noise_seed": 5}
    incomplete = EditorGraph(object_info)
    incomplete.add("KSampler")
    with pytest.raises(ValueError, match="KSampler.model is a required MODEL socket"):
        incomplete.to_json()
