"""4D export benchmark on the real dev scene (maidroid walk, ../shared/reference/real_scenes in the 4-view layout or
real_scenes_9v in the 8-view layout): fit a field (or load one), export it with the texture projected from the
training views (what Export 4D Mesh does when the views are connected), read the GLB back and ray-cast it from the
3 held-out cameras (Embree via trimesh, unlit baseColor, 2×2 rays per pixel), and compare with the field's own
renders of the same views and with the ground truth, over the whole image and inside the object. Also: the
per-frame vertex solve against the plain fixed-point iteration, the surface level against the old constant, the gap
between progress calls (what bounds the interrupt latency). Writes docs/bench_export.md.

    .venv/bin/python bench/bench_export.py                     # default fit of both layouts (long on a CPU) + export
    .venv/bin/python bench/bench_export.py --field 5v=A.pt --field 9v=B.pt   # fields saved with torch.save
                                                               # (bench_nerf4d.py --save-field writes them)
    .venv/bin/python bench/bench_export.py --quick             # smoke run (short fit, small export)
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_nerf4d import LAYOUTS, image_scores, load_layout  # noqa: E402
from bench.real_scene import SCENES  # noqa: E402
from sv4d_lib.nerf import FitConfig, fit_4d
from sv4d_lib.nerf.export import ExportSettings, export_4d
from sv4d_lib.nerf.gltf import read_glb
from sv4d_lib.nerf.mesh import SurfaceSettings, extract_surface
from sv4d_lib.nerf.projection import ViewSet
from sv4d_lib.nerf.raycast import render_mesh
from sv4d_lib.nerf.render import render_videos
from sv4d_lib.nerf.texture import BakeSettings

SHORT = {"5v": "4-view layout, 5 views", "9v": "8-view layout, 9 views"}  # --field keys → bench_nerf4d.LAYOUTS
OLD_LEVEL = 10.0  # the constant surface density of the first exporter
OLD_ITERATIONS = 30  # its fixed-point iterations x ← v − Δ(x, t) from x = v


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@torch.no_grad()
def fixed_point_unconverged(field, vertices: np.ndarray, times: list[float], tolerance: float) -> tuple[float, float]:
    """Share of vertex-frames above `tolerance` and worst residual of the first exporter's solve."""
    v = torch.from_numpy(vertices).to(field.device)
    bad, worst = 0, 0.0
    for t in times:
        tt = torch.full((len(v),), t, device=field.device)
        x = v.clone()
        for _ in range(OLD_ITERATIONS):
            x = v - (field.warp(x, tt) - x)
        residual = (field.warp(x, tt) - v).norm(dim=-1)
        residual = torch.nan_to_num(residual, nan=float("inf"))
        bad += int((residual > tolerance).sum())
        worst = max(worst, float(residual.max()))
    return bad / (len(v) * len(times)), worst


def run(layout: str, field_path: str | None, quick: bool) -> dict:
    torch.set_num_threads(1)
    scene = load_layout(layout, 128)
    num_frames = scene.train_rgb.shape[1]
    result: dict = {"frames": num_frames, "layout": layout, "views": scene.train_rgb.shape[0]}
    if field_path:
        field = torch.load(field_path, weights_only=False)
        result["fit"] = f"loaded ({Path(field_path).name})"
    else:
        config = FitConfig(iterations=30) if quick else FitConfig()
        start = time.perf_counter()
        field = fit_4d(scene.train_rgb, scene.train_mask, scene.train_cameras, config=config)
        result["fit"] = f"FitConfig() default, {config.iterations} iterations, {time.perf_counter() - start:.0f} s"
    field.requires_grad_(False)
    frames = list(range(num_frames))
    nerf, nerf_acc = render_videos(field, scene.heldout_cameras, num_frames, 128, 128)
    settings = ExportSettings(turntable=not quick)
    if quick:
        settings = ExportSettings(surface=SurfaceSettings(resolution=64, face_budget=3000), bake=BakeSettings(size=256),
                                  turntable=False)
    gaps, last = [], [time.perf_counter()]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        gaps.append((now - last[0], stage))
        last[0] = now

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export = export_4d(field, folder, "maidroid", float(scene.meta["animation"]["in_game_fps"]), settings,
                           progress, views=ViewSet(scene.train_rgb, scene.train_mask, scene.train_cameras))
        result["export_seconds"] = time.perf_counter() - start
        mesh = read_glb(export.glb.read_bytes())
        out = [render_mesh(mesh, f, scene.heldout_cameras, 128, 128) for f in frames]
        glb, glb_acc = torch.stack([o[0] for o in out], dim=1), torch.stack([o[1] for o in out], dim=1)
        result["validator"] = validate(export.glb)
    surface, _ = extract_surface(field, SurfaceSettings(resolution=settings.surface.resolution, level=OLD_LEVEL))
    from safetensors.torch import load_file

    truth_vertices = load_file(str(SCENES.parent / LAYOUTS[layout] / "maidroid_128.safetensors"))["vertices"][0].numpy()
    nerf_scores = image_scores(nerf, nerf_acc, scene.heldout_rgb, scene.heldout_mask, scene.heldout_cameras, frames)
    glb_scores = image_scores(glb, glb_acc, scene.heldout_rgb, scene.heldout_mask, scene.heldout_cameras, frames)
    old_share, old_worst = fixed_point_unconverged(field, np.unique(np.asarray(mesh.vertices, np.float32), axis=0),
                                                   [k / (num_frames - 1) for k in range(num_frames)],
                                                   1e-3 * field.bound)
    worst_gaps: dict[str, float] = {}
    for gap, stage in gaps:
        worst_gaps[stage] = max(gap, worst_gaps.get(stage, 0.0))
    result.update({
        "psnr_nerf_truth": nerf_scores["psnr"], "psnr_glb_truth": glb_scores["psnr"], "psnr_glb_nerf": psnr(glb, nerf),
        "inside_nerf_truth": nerf_scores["psnr_inside"], "inside_glb_truth": glb_scores["psnr_inside"],
        "texture_source": export.texture_source, "view_coverage": export.view_coverage,
        "stage_seconds": export.seconds, "file_mb": export.file_bytes / 1e6, "faces": export.faces,
        "vertices": export.vertices, "level": export.surface.level, "components": export.surface.components_found,
        "dropped": export.surface.components_dropped, "morph_normals": export.morph_normals,
        "closes_loop": export.closes_loop, "unconverged": export.unconverged_share,
        "max_residual": export.max_residual, "old_unconverged": old_share, "old_max_residual": old_worst,
        "depth_auto": float(np.ptp(mesh.frames[0][:, 2])), "depth_old": float(np.ptp(surface.vertices[:, 2])),
        "depth_truth": float(np.ptp(truth_vertices[:, 2])), "worst_gaps": worst_gaps,
        "settings": settings, "consistency": export.consistency, "silhouettes": export.silhouettes,
        "tracking": export.tracking,
        "texture_fit": export.texture_fit,
    })
    return result


def validate(path: Path) -> str:
    try:
        from tests.unit.gltf_validator import validate_glb

        issues = validate_glb(path)
        return f"{issues['numErrors']} errors, {issues['numWarnings']} warnings"
    except BaseException as error:  # noqa: BLE001 - a missing node/npm only drops this column
        return f"not run ({type(error).__name__})"


def write_markdown(results: list[dict], path: Path) -> None:
    lines = [
        "# 4D export benchmark (real dev scene)",
        "",
        f"Generated by `bench/bench_export.py` on {datetime.date.today()} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch thread, load {' / '.join(f'{x:.1f}' for x in os.getloadavg())}).",
        "",
    ]
    for r in results:
        lines += layout_markdown(r)
    path.write_text("\n".join(lines))


def layout_markdown(r: dict) -> list[str]:
    s = r["settings"]
    gap = r["psnr_nerf_truth"] - r["psnr_glb_truth"]
    return [
        f"## {r['layout']}",
        "",
        f"Scene: maidroid walk, {r['views']} train views × {r['frames']} frames at 128 px; field: {r['fit']}. "
        f"Texture: {r['texture_source']} ({100 * r['view_coverage']:.1f} % of the texels seen by a view). Export settings: "
        f"mesh resolution {s.surface.resolution}, face budget {s.surface.face_budget}, smoothing "
        f"{s.surface.smoothing_iterations}, texture {s.bake.size}² ({s.bake.samples_per_axis}² samples per texel).",
        "",
        "The GLB is read back from the written file and ray-cast from the 3 held-out cameras (Embree through trimesh, "
        "unlit baseColor texture, 2×2 rays per pixel, on white) at every frame; PSNR is pooled over views and frames.",
        "",
        "| held-out PSNR | whole image (dB) | inside the object (dB) |",
        "|---|---:|---:|",
        f"| field (volume rendering) vs ground truth | {r['psnr_nerf_truth']:.2f} | {r['inside_nerf_truth']:.2f} |",
        f"| exported GLB vs ground truth | {r['psnr_glb_truth']:.2f} | {r['inside_glb_truth']:.2f} |",
        f"| exported GLB vs the field's render | {r['psnr_glb_nerf']:.2f} | |",
        f"| gap field − GLB | {gap:.2f} | {r['inside_nerf_truth'] - r['inside_glb_truth']:.2f} |",
        "",
        "| export | value |",
        "|---|---|",
        f"| total seconds | {r['export_seconds']:.1f} ("
        + ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items()) + ") |",
        f"| GLB size | {r['file_mb']:.2f} MB ({r['faces']} faces, {r['vertices']} vertices after UV seams) |",
        f"| Khronos validator | {r['validator']} |",
        f"| surface level σ (from the opacity) | {r['level']:.3g} (first exporter: constant {OLD_LEVEL:g}) |",
        f"| front-to-back depth of frame 0: auto level / constant {OLD_LEVEL:g} / ground truth | "
        f"{r['depth_auto']:.3f} / {r['depth_old']:.3f} / {r['depth_truth']:.3f} |",
        f"| connected components found / dropped | {r['components']} / {r['dropped']} |",
        f"| vertex-frames without a valid root (residual > 1e-3·bound or culled): Gauss–Newton / fixed point "
        f"({OLD_ITERATIONS} it., residual only) | "
        f"{100 * r['unconverged']:.2f} % / {100 * r['old_unconverged']:.2f} % |",
        f"| worst residual: Gauss–Newton (before neighbour fill) / fixed point | {r['max_residual']:.3g} / "
        f"{r['old_max_residual']:.3g} |",
        "| surface moved to where the views agree on its colour: vertices decided by their views / mean move | "
        + ("off |" if r["consistency"] is None else f"{r['consistency'].moved_vertices} / "
           f"{r['consistency'].mean_move:.2e} |"),
        "| outline moved onto the views' masks: shared rounds + rounds per frame / rim vertices / mean move of the "
        "last shared round | "
        + ("off |" if r["silhouettes"] is None else f"{r['silhouettes'].rounds} + {r['silhouettes'].frame_rounds} / "
           f"{r['silhouettes'].rim_vertices} / {r['silhouettes'].mean_move:.2e} |"),
        "| each frame slid along its surface to where its views show the clip's colours: rounds / vertex-frames "
        "decided by their views / mean slide | "
        + ("off |" if r["tracking"] is None else f"{r['tracking'].rounds} / "
           f"{100 * r['tracking'].decided_share:.0f} % / {r['tracking'].mean_move:.2e} |"),
        "| texture fitted to the views by least squares: PSNR of the mesh's renders over the view pixels it covers, "
        "projected → fitted | "
        + ("off |" if r["texture_fit"] is None else f"{r['texture_fit'].psnr_before:.2f} → "
           f"{r['texture_fit'].psnr_after:.2f} dB ({r['texture_fit'].pixels} pixels) |"),
        f"| morph normals / seamless loop | {r['morph_normals']} / {r['closes_loop']} |",
        "| longest gap between progress calls per stage (bounds the interrupt latency; machine load above) | "
        + ", ".join(f"{k} {v:.2f} s" for k, v in r["worst_gaps"].items()) + " |",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", action="append", default=[], metavar="LAYOUT=FIELD.pt",
                        help="a fitted DynamicNeRF saved with torch.save for layout 5v or 9v (skips its fit)")
    parser.add_argument("--layout", choices=list(SHORT), action="append", help="only these layouts (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: short fit, small export, no doc update")
    args = parser.parse_args()
    fields = dict(item.split("=", 1) for item in args.field)
    if unknown := set(fields) - set(SHORT):
        parser.error(f"--field takes 5v=PATH or 9v=PATH, got {', '.join(sorted(unknown))}")
    results = [run(SHORT[key], fields.get(key), args.quick) for key in args.layout or list(SHORT)]
    out = ROOT / "docs" / "bench_export.md"
    if args.quick:
        out = Path(tempfile.gettempdir()) / "bench_export_quick.md"
    write_markdown(results, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
