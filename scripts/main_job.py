"""The main job: the full paper pipeline (workflows/sv4d2_full_pipeline.json) on the sample video, headless.

With the real `sv4d2.safetensors` (in ComfyUI's models/checkpoints, or downloaded when HF_TOKEN grants access to
the gated stabilityai/sv4d2.0) it runs the workflow as saved. Without it, it says so in one line and runs the same
graph as a labelled smoke run: a tiny checkpoint with the official key layout (random weights), small sizes and
few steps, so the whole pipeline still executes end to end and writes the videos and the animated GLB.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tiny_checkpoint import GOLDEN, write_tiny_checkpoint  # noqa: E402  (before ComfyUI joins sys.path)

from headless.__main__ import main as run_workflow  # noqa: E402
from headless.server import find_comfyui  # noqa: E402

WORKFLOW = REPO / "workflows" / "sv4d2_full_pipeline.json"
OUTPUT = REPO / "outputs" / "main_job"
SMOKE_SETTINGS = [  # the same graph, shrunk for a CPU smoke run with the tiny model
    "Prepare Video.size=64", "Extend Video.steps=3", "Refine.steps=3", "Render 4D.width=64", "Render 4D.height=64",
    "Fit 4D (stage 1).iterations=200", "Fit 4D (stage 1).resolution=64",
    "Fit 4D (stage 2).iterations=100", "Fit 4D (stage 2).resolution=64", "Export 4D Mesh.mesh_resolution=64",
]


def real_checkpoint(comfy_dir: Path) -> Path | None:
    """The official 4-view file if present, or downloaded when a Hugging Face token is configured."""
    path = comfy_dir / "models" / "checkpoints" / "sv4d2.safetensors"
    if path.is_file():
        return path
    if os.environ.get("HF_TOKEN"):
        from sv4d_lib.checkpoint import detect_variant, download_checkpoint

        try:
            return download_checkpoint(detect_variant(path), path.parent)
        except RuntimeError as error:
            print(f"[main job] download failed: {error}")
    return None


def main() -> int:
    comfy_dir = find_comfyui()
    args = [str(WORKFLOW), "--output", str(OUTPUT), "--input-dir", str(REPO / "assets")]
    if real_checkpoint(comfy_dir) is None:
        print("[main job] no real SV4D 2.0 checkpoint (models/checkpoints/sv4d2.safetensors, or HF_TOKEN to download "
              "it): SMOKE RUN with a tiny random-weight checkpoint; the outputs only prove the pipeline runs.")
        models = REPO / ".cache" / "main_job_models"
        tiny = models / "checkpoints" / "sv4d2_tiny.safetensors"
        if not tiny.is_file():
            sys.path.append(str(comfy_dir))  # the random VAE is built with ComfyUI's own layers
            write_tiny_checkpoint(tiny, random_weights=not (GOLDEN / "MANIFEST.md").is_file())
        config = models / "extra_model_paths.yaml"
        config.write_text(f"sv4d2_main_job:\n  base_path: {models}\n  checkpoints: checkpoints\n")
        args += ["--extra-model-paths", str(config), "--set", "Load Model.ckpt_name=checkpoints/sv4d2_tiny.safetensors"]
        for setting in SMOKE_SETTINGS:
            args += ["--set", setting]
    return run_workflow(args)


if __name__ == "__main__":
    sys.exit(main())
