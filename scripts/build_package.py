"""Builds the archive the Comfy Registry publishes, the way comfy-cli packs a node (`comfy node publish`): the
git-tracked files, minus `.comfyignore` matches, plus every `[tool.comfy].includes` path; writes
`.cache/package/<name>-<version>.zip` and prints what it holds. tests/unit/test_package.py checks the archive.

    .venv/bin/python scripts/build_package.py
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pathspec

REPO = Path(__file__).resolve().parent.parent


def ignore_spec(repo: Path) -> pathspec.GitIgnoreSpec:
    """`.comfyignore` (gitignore syntax), as comfy-cli reads it."""
    path = repo / ".comfyignore"
    return pathspec.GitIgnoreSpec.from_lines(path.read_text().splitlines() if path.exists() else [])


def package_files(repo: Path = REPO) -> list[str]:
    """Repository-relative paths the registry archive holds, sorted."""
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True,
                             text=True).stdout.split("\0")
    spec = ignore_spec(repo)
    files = {name for name in tracked if name and (repo / name).is_file() and not spec.match_file(name)}
    for include in tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["comfy"].get("includes", []):
        root = repo / include
        found = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        files.update(p.relative_to(repo).as_posix() for p in found)
    return sorted(files)


def build(repo: Path = REPO, out_dir: Path | None = None) -> Path:
    """Write the archive; returns its path."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    out_dir = out_dir or repo / ".cache" / "package"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{project['name']}-{project['version']}.zip"
    partial = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        for name in package_files(repo):
            z.write(repo / name, name)
    partial.replace(archive)
    return archive


def main() -> None:
    archive = build()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        size = sum(i.file_size for i in z.infolist())
    print("\n".join(names))
    print(f"wrote {archive.relative_to(REPO)}: {len(names)} files, {size / 1e6:.1f} MB unpacked", file=sys.stderr)


if __name__ == "__main__":
    main()
