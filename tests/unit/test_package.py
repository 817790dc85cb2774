"""The archive the Comfy Registry would publish (scripts/build_package.py packs it as comfy-cli does) holds what the
pack needs at run time and in the editor, and the registry metadata points at files that exist."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tracked(folder: str) -> set[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", folder], capture_output=True, text=True, check=True)
    return set(filter(None, out.stdout.split("\0")))


def test_registry_archive_holds_the_pack(tmp_path):
    archive = _load(REPO / "scripts" / "build_package.py", "build_package").build(REPO, tmp_path)
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert archive.name == f"{meta['project']['name']}-{meta['project']['version']}.zip"
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"__init__.py", "pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md", "requirements.txt"} <= names
    for folder in ("web", "example_workflows", "assets", "nodes", "sv4d_lib", "headless"):
        assert tracked(folder) and tracked(folder) <= names, f"{folder}/ is missing from the archive"
    assert [n for n in names if n.startswith("web/docs/") and n.endswith(".md")], "no node help pages"
    templates = [n for n in names if n.startswith("example_workflows/") and n.endswith(".json")]
    assert templates and all(n.removesuffix(".json") + ".jpg" in names for n in templates), "a template lacks its thumbnail"
    pack = _load(REPO / "__init__.py", "sv4d2_pack_init")
    assert {f"assets/{name}" for name in pack.SAMPLE_INPUTS} <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", ".ci", "scripts")]


def test_registry_metadata_points_at_real_files():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy, version = meta["tool"]["comfy"], meta["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert {"web", "example_workflows", "assets"} <= set(comfy["includes"])
    icon = re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/main/(.+)", comfy["Icon"])
    assert icon and icon.group(1) in tracked(icon.group(1)), comfy["Icon"]
    with Image.open(REPO / icon.group(1)) as image:
        assert image.width == image.height >= 200, image.size
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.M).group(1) == version, "CHANGELOG.md's top entry is not this version"
