"""Writes docs/nodes.md, the node reference, from the node definitions ComfyUI serves (`/object_info`).

Run `.venv/bin/python scripts/make_node_docs.py` after changing a node; a test fails while the file is stale.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from headless.server import ComfyServer, find_comfyui  # noqa: E402

PACK_MODULE = "custom_nodes.sv4d2"


def _kind(spec: list) -> str:
    options = spec[1] if len(spec) > 1 else {}
    choices = spec[0] if isinstance(spec[0], list) else options.get("options") if spec[0] == "COMBO" else None
    if choices is None:
        return f"`{spec[0]}`"
    if any("." in str(c) or "/" in str(c) for c in choices):
        return "file name"  # lists model files, which differ between installations
    return "choice of " + ", ".join(f"`{c}`" for c in choices)


def _default(spec: list) -> str:
    options = spec[1] if len(spec) > 1 else {}
    if "default" not in options:
        return ""
    text = str(options["default"])
    if "." in text and "/" in text:
        return ""  # a model file name
    return f"`{text}`" if len(text) <= 40 else "(see the node)"


def render(object_info: dict) -> str:
    """Markdown reference of every SV4D2 node, grouped by category."""
    nodes = {k: v for k, v in object_info.items() if v.get("python_module") == PACK_MODULE}
    lines = ["# Node reference", "",
             "Generated from the node definitions by `scripts/make_node_docs.py`; every input has a tooltip in the "
             "editor too.", ""]
    for node_id, info in sorted(nodes.items(), key=lambda kv: (kv[1]["category"], kv[1]["display_name"])):
        lines += [f"## {info['display_name']} (`{node_id}`, {info['category']})", "", info.get("description", ""), ""]
        lines += ["| input | type | default | what it does |", "|---|---|---|---|"]
        for section in ("required", "optional"):
            for name, spec in (info["input"].get(section) or {}).items():
                options = spec[1] if len(spec) > 1 else {}
                tip = options.get("tooltip", "").replace("|", "\\|").replace("\n", " ")
                opt = " (optional)" if section == "optional" else ""
                lines.append(f"| `{name}`{opt} | {_kind(spec)} | {_default(spec)} | {tip} |")
        outputs = zip(info.get("output_name") or [], info.get("output") or [], info.get("output_tooltips") or [""] * 99)
        lines += ["", "| output | type | what it is |", "|---|---|---|"]
        lines += [f"| `{name}` | `{kind}` | {(tip or '').replace('|', '/')} |" for name, kind, tip in outputs]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ComfyServer(find_comfyui(), Path(tmp)) as server:
        (REPO / "docs" / "nodes.md").write_text(render(server.object_info()))
    print("wrote docs/nodes.md")


if __name__ == "__main__":
    main()
