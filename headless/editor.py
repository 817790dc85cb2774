"""Build editor-format (UI) workflows from code, using the server's `/object_info`.

The example workflows in `example_workflows/` are written with this (scripts/make_workflows.py), so they have
exactly the layout the frontend saves: sockets for links, widget values in declared order (plus the seed control
value), node titles and positions. `headless.convert.ui_to_api` is its inverse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .convert import MODE_BYPASSED, MODE_MUTED, _input_specs, _is_widget, extra_widget_values, widget_default

NODE_MODES = (0, MODE_MUTED, MODE_BYPASSED)  # the editor's "always", "never" (muted) and "bypass"


@dataclass(frozen=True)
class Output:
    """One output socket of a node in the graph (pass it as an input value to link)."""

    node: "EditorNode"
    slot: int


@dataclass
class EditorNode:
    id: int
    type: str
    title: str | None
    inputs: dict[str, Any]
    info: dict = field(repr=False)
    mode: int = 0

    def out(self, which: int | str = 0) -> Output:
        """Output socket by index or by name/type (e.g. "LATENT", "positive")."""
        if isinstance(which, int):
            return Output(self, which)
        names = self.info.get("output_name") or []
        types = self.info.get("output") or []
        for index, (name, kind) in enumerate(zip(names, types)):
            if which in (name, kind):
                return Output(self, index)
        raise KeyError(f"{self.type} has no output {which!r}; outputs are {list(zip(names, types))}")


class EditorGraph:
    """Accumulates nodes and links; `to_json()` returns the workflow the editor would save."""

    def __init__(self, object_info: dict):
        self.object_info = object_info
        self.nodes: list[EditorNode] = []
        self.groups: list[dict] = []

    def add(self, node_type: str, *, title: str | None = None, node_mode: int = 0, **inputs: Any) -> EditorNode:
        """A node with widget values / links by input name. `node_mode` is the editor's run mode (0 runs, 2 muted,
        4 bypassed); it is not called `mode` because node inputs may be (SV4D2 Prepare Video's is)."""
        if node_type not in self.object_info:
            raise KeyError(f"unknown node type {node_type!r}")
        if node_mode not in NODE_MODES:
            raise ValueError(f"node_mode must be one of {NODE_MODES} (run, muted, bypassed), got {node_mode!r}")
        info = self.object_info[node_type]
        declared = {name for name, _ in _input_specs(info)}
        unknown = set(inputs) - declared
        if unknown:
            raise KeyError(f"{node_type} has no inputs {sorted(unknown)}; inputs are {sorted(declared)}")
        node = EditorNode(len(self.nodes) + 1, node_type, title, inputs, info, node_mode)
        self.nodes.append(node)
        return node

    def note(self, text: str, *, title: str = "Note") -> None:
        """A Markdown note (editor-only) shown above the graph."""
        self.nodes.append(EditorNode(len(self.nodes) + 1, "MarkdownNote", title, {"text": text}, {}))

    def to_json(self) -> dict:
        links: list[list] = []
        depth = self._depths()
        node_json = {}
        for node in self.nodes:
            node_json[node.id] = self._node_json(node, links, depth)
        for link in links:
            origin = node_json[link[1]]
            origin["outputs"][link[2]]["links"].append(link[0])
        return {
            "id": "00000000-0000-4000-8000-000000000000", "revision": 0,
            "last_node_id": len(self.nodes), "last_link_id": len(links),
            "nodes": list(node_json.values()), "links": links, "groups": self.groups,
            "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
        }

    def _depths(self) -> dict[int, int]:
        depth: dict[int, int] = {}
        for node in self.nodes:  # nodes are added after their sources, so one pass suffices
            sources = [v.node.id for v in node.inputs.values() if isinstance(v, Output)]
            depth[node.id] = 1 + max((depth[s] for s in sources), default=-1)
        return depth

    def _node_json(self, node: EditorNode, links: list[list], depth: dict[int, int]) -> dict:
        column = [n.id for n in self.nodes if depth[n.id] == depth[node.id]]
        pos = [40 + 380 * depth[node.id], 40 + 330 * column.index(node.id)]
        if node.type == "MarkdownNote":
            return {"id": node.id, "type": node.type, "pos": [40, -260], "size": [760, 220], "flags": {},
                    "order": node.id, "mode": 0, "inputs": [], "outputs": [], "title": node.title,
                    "properties": {}, "widgets_values": [node.inputs["text"]]}
        inputs, widgets = [], []
        for name, spec in _input_specs(node.info):
            value = node.inputs.get(name)
            widget = _is_widget(spec)
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            if isinstance(value, Output):
                link_id = len(links) + 1
                links.append([link_id, value.node.id, value.slot, node.id, len(inputs), kind])
                entry = {"name": name, "type": kind, "link": link_id}
                if widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            elif not widget:
                options = spec[1] if len(spec) > 1 else {}
                if not options.get("optional", False) and name in (node.info["input"].get("required") or {}):
                    raise ValueError(f"{node.type}.{name} is a required {kind} socket and is not connected")
                inputs.append({"name": name, "type": kind, "link": None})
            if widget:
                own = name in node.inputs and not isinstance(value, Output)
                widgets.append(value if own else widget_default(spec))
                widgets.extend(extra_widget_values(name, spec))
        outputs = [{"name": name, "type": kind, "links": []}
                   for name, kind in zip(node.info.get("output_name") or [], node.info.get("output") or [])]
        result = {"id": node.id, "type": node.type, "pos": pos, "size": [340, 260], "flags": {}, "order": node.id,
                  "mode": node.mode, "inputs": inputs, "outputs": outputs,
                  "properties": {"Node name for S&R": node.type}, "widgets_values": widgets}
        if node.title:
            result["title"] = node.title
        return result

