"""Every example workflow (the editor-format JSON is the tested artefact) runs in a real ComfyUI through the
headless runner, with the tiny checkpoint and shrunk settings, and writes the outputs it promises; each file is
saved as the frontend saves it (its zod schema refuses anything else with a sticky alert)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pygltflib
import pytest

from tests.tiny_checkpoint import tiny_checkpoint_name

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "example_workflows"  # the folder core ComfyUI serves a pack's templates from
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
TINY_4V, TINY_8V = "checkpoints/sv4d2_tiny.safetensors", "checkpoints/sv4d2_tiny_8views.safetensors"
SMALL = 64  # pixels: 8×8 latents for the tiny model

# CI settings per workflow (the same graph, smaller), and the files each run must write (glob → count).
SETTINGS: dict[str, list[str]] = {
    "SV4D 2.0 - 4 views": [f"Load Model.ckpt_name={TINY_4V}", f"Prepare Video.size={SMALL}", "Sample NVVS.steps=2"],
    "SV4D 2.0 - 8 views": [f"Load Model.ckpt_name={TINY_8V}", f"Prepare Video.size={SMALL}", "Sample NVVS.steps=2"],
    "SV4D 2.0 - long video": [f"Load Model.ckpt_name={TINY_4V}", f"Prepare Video.size={SMALL}", "Extend Video.steps=2"],
    "SV4D 2.0 - full pipeline": [
        f"Load Model.ckpt_name={TINY_4V}", f"Prepare Video.size={SMALL}", "Extend Video.steps=2", "Refine.steps=2",
        f"Render 4D.width={SMALL}", f"Render 4D.height={SMALL}", "Fit 4D (stage 1).iterations=30",
        "Fit 4D (stage 1).resolution=32", "Fit 4D (stage 2).iterations=20", "Fit 4D (stage 2).resolution=32",
        "Export 4D Mesh.mesh_resolution=32", "Export 4D Mesh.texture_size=256",
    ],
    "SV4D 2.0 - fit your own multi-view videos": [
        *(f"Synthetic Scene (set {n}).{k}" for n in (1, 2) for k in ("width=32", "height=32", "frames=4")),
        "Fit 4D.iterations=30", "Fit 4D.resolution=32", "Render 4D.width=32", "Render 4D.height=32",
        "Render 4D.frames=4", "Export 4D Mesh.mesh_resolution=32",
    ],
    "SV4D 2.0 - dense 4D": [
        f"Load Model (4 views).ckpt_name={TINY_4V}", f"Load Model (8 views).ckpt_name={TINY_8V}",
        f"Prepare Video.size={SMALL}",
        *(f"{node} ({label}).steps=2" for node in ("Extend Video", "Refine") for label in ("4 views", "8 views")),
        *(f"Render 4D ({label}).{side}={SMALL}" for label in ("4 views", "8 views") for side in ("width", "height")),
        "Fit 4D (stage 1).iterations=15", "Fit 4D (stage 1).resolution=32", "Fit 4D (stage 2).iterations=10",
        "Fit 4D (stage 2).resolution=32", "Export 4D Mesh.mesh_resolution=32", "Export 4D Mesh.turntable=false",
        "Export 4D Mesh.texture_size=256",
    ],
    "SV4D 2.0 - 4D fit of a real scene": ["Fit 4D.iterations=30", "Fit 4D.resolution=32",
                                          "Export 4D Mesh.mesh_resolution=32", f"Render 4D.width={SMALL}",
                                          f"Render 4D.height={SMALL}", "Render 4D.frames=4",
                                          "Render Held-out Views.width=32", "Render Held-out Views.height=32",
                                          "Held-out Size.width=32", "Held-out Size.height=32",
                                          "Export 4D Mesh.turntable=false"],
    "SV4D 2.0 - core samplers": [f"Load Model.ckpt_name={TINY_4V}", f"Prepare Video.size={SMALL}", "EDM Sigmas.steps=2",
                            "KSampler.steps=2", "Split Sigmas.step=1"],
}
# CI's second host (.ci/run) fits the real scene as a user would with the draft preset, at the template's size,
# and checks the held-out score the template shows (all 21 frames of the 3 held-out views); only the export and the
# preview video are shrunk. The default host runs the shrunk graph above.
REAL_SCENE = "SV4D 2.0 - 4D fit of a real scene"
REAL_SCENE_DRAFT = os.environ.get("SV4D2_REAL_SCENE_FIT") == "draft"
if REAL_SCENE_DRAFT:
    SETTINGS[REAL_SCENE] = ["Fit 4D.preset=draft", "Export 4D Mesh.turntable=false", "Export 4D Mesh.mesh_resolution=64",
                            "Render 4D.frames=4"]
REAL_SCENE_MIN_PSNR = 20.0  # dB held-out; issue 24 measured 21.4 dB with the draft preset on core 0.8.0
EXPECTED: dict[str, dict[str, int]] = {
    "SV4D 2.0 - 4 views": {"sv4d2/4views_*_v*.mp4": 5, "sv4d2/4views_grid_*.png": 1},
    "SV4D 2.0 - 8 views": {"sv4d2/8views_*_v*.mp4": 9, "sv4d2/8views_grid_*.png": 1},
    "SV4D 2.0 - long video": {"sv4d2/long_*_v*.mp4": 5},
    "SV4D 2.0 - full pipeline": {"sv4d2/pipeline_views_*_v*.mp4": 5, "sv4d2/pipeline_refined_*_v*.mp4": 5,
                            "sv4d2/asset_*.glb": 1},
    "SV4D 2.0 - fit your own multi-view videos": {"sv4d2/own_videos_*.glb": 1},
    "SV4D 2.0 - dense 4D": {"sv4d2/dense_views_*_v*.mp4": 12, "sv4d2/dense_asset_*.glb": 1},
    "SV4D 2.0 - 4D fit of a real scene": {"sv4d2/real_scene_*.glb": 1, "sv4d2/real_scene_preview_*.mp4": 1},
    "SV4D 2.0 - core samplers": {"sv4d2/core_custom_*.png": 48, "sv4d2/core_ksampler_*.png": 48,
                            "sv4d2/core_refined_*.png": 48},
}
FRAMES = {"SV4D 2.0 - 4 views": 12, "SV4D 2.0 - 8 views": 5, "SV4D 2.0 - long video": 21,
          "SV4D 2.0 - full pipeline": 21, "SV4D 2.0 - dense 4D": 21,
          REAL_SCENE: 5 * 4}  # 5 views × the frames rendered
VIDEO_SIZE = {REAL_SCENE: 128 if REAL_SCENE_DRAFT else SMALL}  # the template's own size when fitted in full


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """extra_model_paths.yaml of a models folder holding the tiny 4-view and 8-view checkpoints."""
    root = tmp_path_factory.mktemp("workflow_models")
    for variant in ("4v", "8v"):
        tiny_checkpoint_name(root, variant)
    config = root / "extra_model_paths.yaml"
    config.write_text(f"sv4d2_ci:\n  base_path: {root}\n  checkpoints: checkpoints\n")
    return config


def run_workflow(path: Path, output: Path, models: Path, settings: list[str],
                 input_dir: Path = REPO / "assets") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "headless", str(path), "--output", str(output), "--input-dir",
               str(input_dir), "--extra-model-paths", str(models)]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)


def _nulls(value, where: str = "") -> list[str]:
    if value is None:
        return [where]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [hit for key, item in items for hit in _nulls(item, f"{where}/{key}")]


def test_every_workflow_is_covered_and_saved_as_the_frontend_saves():
    assert {p.stem for p in WORKFLOWS} == set(SETTINGS) == set(EXPECTED)
    assert all(p.stem.startswith("SV4D 2.0 - ") for p in WORKFLOWS)  # the template browser shows file names
    assert not list(REPO.glob("workflows/*.json"))  # legacy folder name: newer core warns about it
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        assert isinstance(workflow["nodes"], list) and isinstance(workflow["links"], list), path.name
        # the editor writes null only for an unconnected input's link; other nulls (undefined fields read back
        # through playwright) make the frontend's schema check raise a sticky alert
        assert not [p for p in _nulls(workflow) if not p.endswith("/link")], path.name
        assert {n["mode"] for n in workflow["nodes"]} <= {0, 2, 4}, path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_headless(path: Path, tmp_path: Path, models: Path):
    result = run_workflow(path, tmp_path, models, SETTINGS[path.stem])
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    for pattern, count in EXPECTED[path.stem].items():
        found = sorted(tmp_path.glob(pattern))
        assert len(found) == count, (pattern, [p.name for p in found])
        for video in (f for f in found if f.suffix == ".mp4"):
            frames = iio.imread(video)
            side = VIDEO_SIZE.get(path.stem, SMALL)
            assert frames.shape[1:3] == (side, side), video.name
            if path.stem in FRAMES:
                assert frames.shape[0] == FRAMES[path.stem], video.name
        for glb in (f for f in found if f.suffix == ".glb"):
            gltf = pygltflib.GLTF2().load(str(glb))
            assert gltf.animations and gltf.meshes[0].primitives[0].targets, f"{glb.name} is not animated"
    if path.stem == REAL_SCENE and REAL_SCENE_DRAFT:
        score = re.search(r"Show Held-out Score shows: PSNR ([0-9.]+) dB", result.stdout)
        assert score, result.stdout[-2000:]
        assert float(score.group(1)) >= REAL_SCENE_MIN_PSNR, result.stdout[-2000:]


def test_fresh_install_runs_up_to_the_missing_model_file(tmp_path: Path, models: Path):
    """A new user's empty input folder: the pack installs the sample video, so the run stops only at the model."""
    output, input_dir = tmp_path / "out", tmp_path / "input"
    input_dir.mkdir()  # as in a fresh ComfyUI (core's video nodes fail to register without it)
    result = run_workflow(WORKFLOW_DIR / "SV4D 2.0 - 4 views.json", output, models,
                          [f"Prepare Video.size={SMALL}", "Sample NVVS.steps=1"], input_dir=input_dir)
    assert result.returncode == 1
    assert "sv4d2.safetensors is not in" in result.stderr and "download" in result.stderr
    assert (input_dir / "sample_object.mp4").read_bytes() == (REPO / "assets" / "sample_object.mp4").read_bytes()
    assert not [p for p in output.rglob("*") if p.is_file()]
