"""Writes the node reference from the node definitions ComfyUI serves (`/object_info`): docs/nodes.md, and one help
page per node, web/docs/<node id>.md, which the frontend's node library and selection toolbox show (newer frontends
fetch a custom node's help from /extensions/<pack>/docs/<node id>.md, i.e. the pack's web folder).

Run `.venv/bin/python scripts/make_node_docs.py` after changing a node; a test fails while a file is stale.
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


def pack_nodes(object_info: dict) -> dict[str, dict]:
    return {k: v for k, v in object_info.items() if v.get("python_module") == PACK_MODULE}


def node_tables(info: dict) -> list[str]:
    """Markdown tables of a node's inputs and outputs."""
    lines = ["| input | type | default | what it does |", "|---|---|---|---|"]
    for section in ("required", "optional"):
        for name, spec in (info["input"].get(section) or {}).items():
            options = spec[1] if len(spec) > 1 else {}
            tip = options.get("tooltip", "").replace("|", "\\|").replace("\n", " ")
            opt = " (optional)" if section == "optional" else ""
            lines.append(f"| `{name}`{opt} | {_kind(spec)} | {_default(spec)} | {tip} |")
    outputs = zip(info.get("output_name") or [], info.get("output") or [], info.get("output_tooltips") or [""] * 99)
    lines += ["", "| output | type | what it is |", "|---|---|---|"]
    lines += [f"| `{name}` | `{kind}` | {(tip or '').replace('|', '/')} |" for name, kind, tip in outputs]
    return lines


def render(object_info: dict) -> str:
    """Markdown reference of every SV4D2 node, grouped by category."""
    lines = ["# Node reference", "",
             "Generated from the node definitions by `scripts/make_node_docs.py`; every input has a tooltip in the "
             "editor too.", ""]
    for node_id, info in sorted(pack_nodes(object_info).items(), key=lambda kv: (kv[1]["category"], kv[1]["display_name"])):
        lines += [f"## {info['display_name']} (`{node_id}`, {info['category']})", "", info.get("description", ""), ""]
        lines += node_tables(info)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def help_pages(object_info: dict) -> dict[str, str]:
    """File name → help page (Markdown) of every SV4D2 node, as the frontend's help panel shows it: lists rather
    than tables, which a narrow side panel cannot show whole."""
    pages = {}
    for node_id, info in pack_nodes(object_info).items():
        lines = [f"# {info['display_name']}", "", info.get("description", ""), "",
                 f"Category: {info['category']} · node id `{node_id}` · part of SV4D 2.0 for ComfyUI (the templates "
                 "*SV4D 2.0 - ...* in the template browser show it at work).", "", "## Inputs", ""]
        for section in ("required", "optional"):
            for name, spec in (info["input"].get(section) or {}).items():
                options = spec[1] if len(spec) > 1 else {}
                default = _default(spec)
                facts = ", ".join(filter(None, [_kind(spec), "optional" if section == "optional" else "",
                                                f"default {default}" if default.startswith("`") else ""]))
                lines.append(f"- **{name}** ({facts}): {options.get('tooltip', '')}".rstrip())
        lines += ["", "## Outputs", ""]
        outputs = zip(info.get("output_name") or [], info.get("output") or [], info.get("output_tooltips") or [""] * 99)
        lines += [f"- **{name}** (`{kind}`): {tip or ''}".rstrip() for name, kind, tip in outputs]
        pages[f"{node_id}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ComfyServer(find_comfyui(), Path(tmp)) as server:
        object_info = server.object_info()
    (REPO / "docs" / "nodes.md").write_text(render(object_info))
    folder = REPO / "web" / "docs"
    folder.mkdir(exist_ok=True)
    pages = help_pages(object_info)
    for stale in set(p.name for p in folder.glob("*.md")) - set(pages):
        (folder / stale).unlink()
    for name, text in pages.items():
        (folder / name).write_text(text)
    print(f"wrote docs/nodes.md and {len(pages)} help pages in web/docs")


if __name__ == "__main__":
    main()
