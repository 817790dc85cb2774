"""Editor (UI) workflow JSON → API prompt JSON, driven by the server's `/object_info`.

ComfyUI's backend has no such converter (the frontend's `graphToPrompt` does it), so we write our own from the
documented formats: positional `widgets_values` follow the node's declared input order; an INT/COMBO widget with
`control_after_generate` carries one extra value; upload widgets carry one extra value; links override widgets;
Reroute/PrimitiveNode are editor-only; muted nodes (mode 2) are dropped and bypassed nodes (mode 4) pass their
matching input through.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "upload")
EDITOR_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MODE_MUTED, MODE_BYPASSED = 2, 4


class WorkflowError(ValueError):
    """A workflow that cannot be converted; the message names the node and the problem."""


@dataclass
class _Link:
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int
    type: str


def read_workflow(path: Path) -> Any:
    """An editor workflow or API prompt read from `path`; WorkflowError when unreadable or neither."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WorkflowError(f"cannot read workflow {path}: {error}") from error
    if not is_api_prompt(data) and not (isinstance(data, dict) and isinstance(data.get("nodes"), list)):
        raise WorkflowError(f"{path} is not a ComfyUI workflow: expected an editor workflow with a 'nodes' list "
                            "(or an API prompt mapping node ids to class_type/inputs)")
    return data


def is_api_prompt(data: Any) -> bool:
    """True for an API-format prompt (`{"id": {"class_type": ..., "inputs": ...}}`)."""
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "class_type" in v for v in data.values()
    )


def _describe(node: dict) -> str:
    title = node.get("title") or node.get("type")
    return f"node {node.get('id')} ({title!r}, type {node.get('type')!r})"


def _input_specs(info: dict) -> list[tuple[str, list]]:
    """Declared inputs (required, then optional) in the order the editor lays out widgets."""
    specs = []
    order = info.get("input_order") or {}
    for section in ("required", "optional"):
        declared = info.get("input", {}).get(section, {}) or {}
        names = order.get(section) or list(declared)
        specs.extend((name, declared[name]) for name in names if name in declared)
    return specs


def _is_widget(spec: list) -> bool:
    """Whether the editor gives this input a widget (whose value is saved in `widgets_values`).

    As the frontend decides: an explicit `widgetType` (custom widgets, and multi-type inputs such as newer core
    Preview3D's `model_file`, declared "STRING,File3D,..." with widgetType "STRING"), a combo list, or a widget
    type as the (first) declared type.
    """
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    if options.get("widgetType"):
        return True
    return isinstance(kind, list) or (isinstance(kind, str) and kind.split(",")[0] in WIDGET_TYPES)


def extra_widget_values(name: str, spec: list) -> list[str]:
    """Editor-only values saved after a widget's own value: the seed control mode, the upload button."""
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    extra = []
    control = options.get("control_after_generate")
    if control or (control is None and kind == "INT" and name in ("seed", "noise_seed")):
        extra.append("fixed")
    if any(options.get(key) for key in UPLOAD_OPTIONS):
        extra.append("image")
    return extra


def widget_default(spec: list) -> Any:
    """The value the editor gives a widget that has none saved: the declared default, else a combo's first option,
    else the type's zero value (None for a custom widget type)."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in options:
        return options["default"]
    choices = spec[0] if isinstance(spec[0], list) else options.get("options")
    if choices:
        return choices[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(spec[0])


def _fits(value: Any, spec: list) -> bool:
    """Whether a saved widget value has the type its input declares (custom widget types take anything)."""
    kind = spec[0]
    if isinstance(kind, list) or kind == "COMBO":  # options may be numbers; a missing file name is still a name
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    kind = kind.split(",")[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        "INT": number and float(value).is_integer(), "FLOAT": number, "STRING": isinstance(value, str),
        "BOOLEAN": isinstance(value, bool),
    }.get(kind, True)


def _widget_inputs(node: dict, info: dict) -> dict[str, Any]:
    """Widget inputs from `widgets_values`, as the editor reads them when it loads the node.

    Positional values follow the declared widget order. Values past the last declared widget belong to widgets the
    editor adds itself (PreviewAny's text preview and its Markdown toggle, saved by 1.3x frontends) and are not
    inputs: ignored, as the editor ignores them when it queues. A widget with no saved value (an input the node
    gained after the workflow was saved, or a null) gets its default, as the editor fills it. A value of the wrong
    type means the values do not line up with this version's inputs: an error naming the input.
    """
    values = node.get("widgets_values")
    specs = [(n, s) for n, s in _input_specs(info) if _is_widget(s)]
    if isinstance(values, dict):  # some packs save widgets by name
        saved = {n: values.get(n) for n, _ in specs}
    else:
        saved, position = {}, 0
        for name, spec in specs:
            saved[name] = values[position] if values and position < len(values) else None
            position += 1 + len(extra_widget_values(name, spec))
    result = {}
    for name, spec in specs:
        value = saved[name]
        if value is None:
            value = widget_default(spec)
            if value is None:
                continue
        elif not _fits(value, spec):
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            raise WorkflowError(
                f"{_describe(node)}: widget value {value!r} for input {name!r} is not a {kind}; the workflow was "
                "saved with another version of this node: open and re-save it in the editor"
            )
        result[name] = value
    return result


def ui_to_api(workflow: dict, object_info: dict) -> dict[str, dict]:
    """Convert an editor workflow to an API prompt. Raises WorkflowError naming the node on any problem."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError(
            "this JSON is not a ComfyUI workflow: expected an editor workflow with a 'nodes' list (or an API "
            "prompt mapping node ids to {'class_type', 'inputs'})"
        )
    subgraphs = {s.get("id") for s in (workflow.get("definitions") or {}).get("subgraphs", [])}
    nodes = {}
    for node in workflow["nodes"]:
        if not isinstance(node, dict) or "id" not in node or "type" not in node:
            raise WorkflowError(f"malformed node entry in workflow: {str(node)[:120]}")
        nodes[node["id"]] = node
    links: dict[int, _Link] = {}
    for entry in workflow.get("links") or []:
        if isinstance(entry, dict):
            link = _Link(entry["origin_id"], entry["origin_slot"], entry["target_id"], entry["target_slot"],
                         entry.get("type", "*"))
            links[entry["id"]] = link
        else:
            links[entry[0]] = _Link(entry[1], entry[2], entry[3], entry[4], entry[5] if len(entry) > 5 else "*")

    for node in nodes.values():
        kind = node["type"]
        if kind in subgraphs:
            raise WorkflowError(f"{_describe(node)} is a subgraph; the headless runner needs it unpacked into nodes")
        if kind not in object_info and kind not in EDITOR_ONLY and node.get("mode", 0) != MODE_MUTED:
            raise WorkflowError(
                f"{_describe(node)}: unknown node type {kind!r}; install the node pack that provides it "
                "(or remove the node)"
            )

    def source_of(link_id: int, wanted_by: dict) -> list | Any | None:
        """The API value feeding a link: [origin_id, slot], a primitive value, or None (muted source)."""
        seen = set()
        while True:
            if link_id in seen:
                raise WorkflowError(f"{_describe(wanted_by)}: a cycle of reroutes/bypassed nodes feeds it")
            seen.add(link_id)
            link = links.get(link_id)
            if link is None:
                raise WorkflowError(f"{_describe(wanted_by)}: input is connected to link {link_id}, which does not exist")
            origin = nodes.get(link.origin_id)
            if origin is None:
                raise WorkflowError(
                    f"{_describe(wanted_by)}: dangling link {link_id} from missing node {link.origin_id}"
                )
            mode = origin.get("mode", 0)
            if origin["type"] == "PrimitiveNode":
                values = origin.get("widgets_values") or []
                if not values:
                    raise WorkflowError(f"{_describe(origin)} has no value")
                return values[0]
            if origin["type"] == "Reroute" or mode == MODE_BYPASSED:
                upstream = _passthrough_input(origin, link)
                if upstream is None:
                    return None
                link_id = upstream
                continue
            if mode == MODE_MUTED:
                return None
            return [str(origin["id"]), link.origin_slot]

    prompt: dict[str, dict] = {}
    for node in nodes.values():
        if node["type"] in EDITOR_ONLY or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        info = object_info[node["type"]]
        inputs = _widget_inputs(node, info)
        declared = {name for name, _ in _input_specs(info)}
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            name = slot.get("name") or (slot.get("widget") or {}).get("name")
            if name not in declared:
                raise WorkflowError(f"{_describe(node)}: connected input {name!r} is not an input of this node type")
            value = source_of(slot["link"], node)
            if value is None:
                inputs.pop(name, None)
            else:
                inputs[name] = value
        prompt[str(node["id"])] = {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]},
        }
    if not prompt:
        raise WorkflowError("the workflow has no executable nodes")
    return prompt


def _passthrough_input(node: dict, link: _Link) -> int | None:
    """Link id that a Reroute or bypassed node forwards for the given outgoing link (matching type)."""
    connected = [(i, s) for i, s in enumerate(node.get("inputs") or []) if s.get("link") is not None]
    if node["type"] == "Reroute":
        return connected[0][1]["link"] if connected else None
    same_type = [(i, s) for i, s in connected if s.get("type") in (link.type, "*")]
    for index, slot in same_type:
        if index == link.origin_slot:
            return slot["link"]
    return same_type[0][1]["link"] if same_type else None


def apply_overrides(prompt: dict[str, dict], overrides: list[str], object_info: dict) -> None:
    """Apply `TITLE.input=value` (or `#ID.input=value`) overrides; values are parsed as JSON when possible."""
    for item in overrides:
        target, sep, raw = item.partition("=")
        title, dot, name = target.rpartition(".")
        if not sep or not dot or not title or not name:
            raise WorkflowError(f"override {item!r} must look like 'Node title.input=value' or '#12.input=value'")
        if title.startswith("#"):
            matches = [title[1:]] if title[1:] in prompt else []
        else:
            matches = [nid for nid, n in prompt.items() if n["_meta"]["title"] == title]
        if not matches:
            titles = sorted({n["_meta"]["title"] for n in prompt.values()})
            raise WorkflowError(f"override {item!r}: no node titled {title!r}; titles are {titles}")
        if len(matches) > 1:
            raise WorkflowError(f"override {item!r}: {len(matches)} nodes are titled {title!r}; use '#ID.{name}=...'")
        node = prompt[matches[0]]
        declared = [n for n, _ in _input_specs(object_info[node["class_type"]])]
        if name not in declared:
            raise WorkflowError(f"override {item!r}: {node['class_type']} has no input {name!r}; inputs are {declared}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node["inputs"][name] = value
