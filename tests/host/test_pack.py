"""The pack as ComfyUI and ComfyUI-Manager see it: packaging, cheap import, every node in /object_info."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_MODULE = "custom_nodes.sv4d2"


def test_import_is_cheap_and_exposes_a_v3_entrypoint():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('comfyui_sv4d2', {str(REPO / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(REPO)!r}])\n"
        "pack = importlib.util.module_from_spec(spec); sys.modules['comfyui_sv4d2'] = pack\n"
        "spec.loader.exec_module(pack)\n"
        "heavy = [m for m in ('torch', 'comfy', 'kornia', 'trimesh', 'skimage', 'numpy') if m in sys.modules]\n"
        "print(heavy, callable(pack.comfy_entrypoint), pack.WEB_DIRECTORY, hasattr(pack, 'NODE_CLASS_MAPPINGS'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True ./web False"


def test_packaging_metadata_matches_requirements():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    for key in ("version", "description", "license", "requires-python", "dependencies"):
        assert project.get(key), key
    assert project["urls"]["Repository"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"] and comfy["web"] == "web"
    assert comfy["requires-comfyui"] == ">=0.3.75"
    requirements = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert sorted(requirements) == sorted(project["dependencies"])
    names = {r.split(">")[0].split("=")[0].split("<")[0].lower() for r in requirements}
    assert not names & {"torch", "torchvision", "torchaudio", "tinycudann"}
    assert not [n for n in names if n.startswith("comfyui")]


def _sockets(inputs: dict) -> dict:
    """Input name → (type, options); combo choices are left out (file lists differ between the two hosts)."""
    result = {}
    for name, spec in inputs.items():
        kind = "COMBO" if isinstance(spec[0], list) else spec[0]
        options = {k: v for k, v in (spec[1] if len(spec) > 1 else {}).items() if k != "options"}
        result[name] = (kind, options)
    return result


def _pack_nodes(comfy_host) -> dict:
    return {name: cls for name, cls in comfy_host.nodes.NODE_CLASS_MAPPINGS.items()
            if getattr(cls, "RELATIVE_PYTHON_MODULE", "") == PACK_MODULE}


def test_every_node_is_listed_with_its_declared_sockets(comfy_host, comfy_server):
    pack_nodes = _pack_nodes(comfy_host)
    assert pack_nodes, "the pack registered no nodes"
    info = comfy_server.object_info()
    for node_id, cls in pack_nodes.items():
        assert node_id.startswith("SV4D2"), node_id
        listed = info[node_id]
        declared = json.loads(json.dumps(cls.INPUT_TYPES()))
        for section in ("required", "optional"):
            assert _sockets(listed["input"].get(section, {})) == _sockets(declared.get(section, {})), (node_id, section)
        assert listed["output"] == list(cls.RETURN_TYPES), node_id
        assert listed["display_name"].startswith("SV4D2 "), node_id
        assert listed["category"].startswith("SV4D2"), node_id
        assert listed["description"], f"{node_id} has no description"
        for section in ("required", "optional"):
            for name, spec in listed["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_node_reference_and_help_pages_are_current(comfy_server):
    """docs/nodes.md and one help page per node (web/docs/<node id>.md, the frontend's help panel) are generated
    from the node definitions; regenerate them with scripts/make_node_docs.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_node_docs", REPO / "scripts" / "make_node_docs.py")
    make_node_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_node_docs)
    object_info = comfy_server.object_info()
    assert (REPO / "docs" / "nodes.md").read_text() == make_node_docs.render(object_info)
    pages = make_node_docs.help_pages(object_info)
    assert set(pages) == {f"{node_id}.md" for node_id in make_node_docs.pack_nodes(object_info)}
    assert {p.name: p.read_text() for p in (REPO / "web" / "docs").glob("*.md")} == pages


def test_help_pages_are_served_where_the_frontend_looks(comfy_server):
    """Newer frontends fetch a custom node's help from /extensions/<pack folder>/docs/<node id>.md and drop
    anything served as text/html."""
    import urllib.request

    node_id = "SV4D2CFGGrid"
    with urllib.request.urlopen(f"{comfy_server.url}/extensions/sv4d2/docs/{node_id}.md", timeout=30) as response:
        assert "text/html" not in response.headers.get("Content-Type", "")
        assert response.read().decode().startswith("# SV4D2 CFG Grid\n")
