"""4D-fit benchmark. Writes docs/bench_nerf4d.md.

1. The real dev scene in both official layouts: `../shared/reference/real_scenes/` (4-view layout, 5 training views)
   and `real_scenes_9v/` (8-view layout, 9 training views), same animated character and held-out views. Each is fitted
   with a preset and exported to an animated GLB (texture projected from the training views); the written GLB is read
   back and ray-cast (Embree) from the held-out cameras. For the field and the GLB: held-out PSNR/SSIM over the whole
   image and inside the object (pixels where the truth or the render has the object), per view and per frame;
   train PSNR, fit wall and CPU time, render time per frame, where the error comes from.
2. Optionally (`--ablation`), each design choice of the fit switched off on its own at the same iteration count.
3. The procedural scene (`sv4d_lib.synthetic`) held-out quality against iterations, to catch regressions.

    .venv/bin/python bench/bench_nerf4d.py            # both layouts (about 25 min on 2 quiet CPU cores)
    .venv/bin/python bench/bench_nerf4d.py --quick    # smoke run (seconds)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_degraded_views import results_table, stored_rows  # noqa: E402
from bench.real_scene import SCENES, RealScene, load_real_scene, pooled_psnr  # noqa: E402
from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.nerf import FitConfig, fit_4d  # noqa: E402
from sv4d_lib.nerf.deformation import DeformationConfig  # noqa: E402
from sv4d_lib.nerf.export import ExportSettings, export_4d  # noqa: E402
from sv4d_lib.nerf.gltf import read_glb  # noqa: E402
from sv4d_lib.nerf.mesh import SurfaceSettings  # noqa: E402
from sv4d_lib.nerf.metrics import video_metrics  # noqa: E402
from sv4d_lib.nerf.projection import ViewSet  # noqa: E402
from sv4d_lib.nerf.raycast import render_mesh  # noqa: E402
from sv4d_lib.nerf.render import render_videos, render_views  # noqa: E402
from sv4d_lib.nerf.texture import BakeSettings  # noqa: E402
from sv4d_lib.synthetic import render_scene  # noqa: E402

PROCEDURAL_TRAIN = OrbitCameras.preset("8v", 10.0)  # the 8-view model's orbit, input view included
PROCEDURAL_HELD_OUT = OrbitCameras((10.0,) * 4, (52.5, 142.5, 232.5, 315.0))  # between training views
# The dev scene in the official layouts: folder beside real_scenes, training views
LAYOUTS = {"4-view layout, 5 views": "real_scenes", "8-view layout, 9 views": "real_scenes_9v"}
GLB_SOURCES = ("views", "field")  # texture sources of the exported GLBs that are scored


@dataclasses.dataclass
class Settings:
    size: int = 128
    preset: str = "default"
    layouts: tuple[str, ...] = tuple(LAYOUTS)
    ablation_layout: str = "4-view layout, 5 views"
    ablation_iterations: int = 1000
    frames_stride: int = 1  # held-out frames scored (every k-th); the ablation uses every 4th
    procedural_size: int = 64
    procedural_frames: int = 5
    procedural_iterations: tuple[int, ...] = (600, 1500)
    fit_changes: dict = dataclasses.field(default_factory=dict)  # applied to every fit (the quick run shrinks them)
    ablation_variants: tuple[str, ...] | None = None  # None: all of ABLATION
    export: ExportSettings = dataclasses.field(default_factory=lambda: ExportSettings(turntable=False))


ABLATION: dict[str, dict] = {
    "the default design": {},
    "no per-frame visual hulls": {"hulls": False},
    "deformation MLP without its hash grid (1 coarse level)": {
        "field_deformation": {"grid": {"otype": "HashGrid", "n_levels": 1, "n_features_per_level": 2,
                                       "log2_hashmap_size": 14, "base_resolution": 8, "per_level_scale": 1.0}}},
    "no coarse-to-fine annealing": {"anneal_fraction": 0.0},
    "no progressive frames": {"progressive": False},
    "visibility weighting on (the paper's; off by default)": {"visibility": True},
    "no opacity total variation": {"tv_weight": 0.0},
}

QUICK_CHANGES = {"rays_per_step": 256, "num_samples": 32}
QUICK = Settings(size=128, preset="draft", ablation_iterations=6, frames_stride=20, procedural_size=24,
                 procedural_frames=2, procedural_iterations=(6,), fit_changes={**QUICK_CHANGES, "iterations": 6},
                 ablation_variants=("no per-frame visual hulls",),
                 export=ExportSettings(surface=SurfaceSettings(resolution=48, face_budget=2000),
                                       bake=BakeSettings(size=128, samples_per_axis=1), turntable=False))


def configure(preset: str, changes: dict) -> FitConfig:
    """A preset with `changes`; keys `field_<name>` change the field's architecture (`field_deformation` takes the
    deformation config's fields)."""
    changes = dict(changes)
    field = {key[len("field_"):]: changes.pop(key) for key in list(changes) if key.startswith("field_")}
    if "deformation" in field:
        field["deformation"] = DeformationConfig(**field["deformation"])
    config = FitConfig.preset(preset, device="cpu", preview_every=10**9, **changes)
    config.field = dataclasses.replace(config.field, **field)
    return config


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def load_layout(layout: str, size: int) -> RealScene:
    return load_real_scene(size, folder=SCENES.parent / LAYOUTS[layout])


def error_shares(rgb: torch.Tensor, acc: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Where the held-out squared error comes from: shares of the total over pixel classes (render opacity and true
    mask thresholded at 0.5). Too deep or bulging shapes show up as "covered by the fit, background in truth"."""
    error = (rgb - truth).square().mean(dim=-1)
    fit, real = acc > 0.5, mask > 0.5
    total = float(error.sum())
    classes = {"fit covers, truth is background": fit & ~real, "truth is object, fit misses it": ~fit & real,
               "both object (colour, texture placement)": fit & real, "both background": ~fit & ~real}
    return {name: float(error[where].sum()) / total for name, where in classes.items()}


def image_scores(rgb: torch.Tensor, acc: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor,
                 cameras: OrbitCameras, frames: list[int]) -> dict:
    """Held-out scores of renders (V, K, H, W, 3) with opacity (V, K, H, W) against the truth and its masks, over
    the whole image and inside the object (where the truth or the render has it), per view and per frame."""
    inside = (mask > 0.5) | (acc > 0.5)
    views = [f"({e:g}°, {a:g}°)" for e, a in zip(cameras.elevations_deg, cameras.azimuths_deg)]
    return {
        "psnr": pooled_psnr(rgb, truth),
        "psnr_inside": pooled_psnr(rgb, truth, inside),
        "ssim": video_metrics(rgb.flatten(0, 1), truth.flatten(0, 1))["ssim"],
        "per_view": {name: (pooled_psnr(rgb[v], truth[v]), pooled_psnr(rgb[v], truth[v], inside[v]))
                     for v, name in enumerate(views)},
        "per_frame": {f: (pooled_psnr(rgb[:, k], truth[:, k]), pooled_psnr(rgb[:, k], truth[:, k], inside[:, k]))
                      for k, f in enumerate(frames)},
        "error_shares": error_shares(rgb, acc, truth, mask),
    }


def render_field(field, cameras: OrbitCameras, frames: list[int], num_frames: int, size: int, num_samples: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    views = [render_views(field, cameras, f / (num_frames - 1), size, size, num_samples) for f in frames]
    return torch.stack([v[0] for v in views], dim=1), torch.stack([v[1] for v in views], dim=1)


def glb_scores(field, scene: RealScene, settings: ExportSettings, source: str, size: int, frames: list[int]) -> dict:
    """Export the field (texture from `source`), read the written GLB back, ray-cast it from the held-out cameras
    at the scored frames (its frame k is the clip's frame k) and score it."""
    settings = dataclasses.replace(settings, texture_source=source)
    views = ViewSet(scene.train_rgb, scene.train_mask, scene.train_cameras)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export = export_4d(field, folder, "bench", 15.0, settings, views=views)
        seconds = time.perf_counter() - start
        mesh = read_glb(export.glb.read_bytes())
    out = [render_mesh(mesh, f, scene.heldout_cameras, size, size) for f in frames]
    rgb, acc = torch.stack([o[0] for o in out], dim=1), torch.stack([o[1] for o in out], dim=1)
    scores = image_scores(rgb, acc, scene.heldout_rgb[:, frames], scene.heldout_mask[:, frames],
                          scene.heldout_cameras, frames)
    return {**scores, "export_seconds": seconds, "summary": export.summary(), "view_coverage": export.view_coverage}


def real_fit(scene: RealScene, preset: str, changes: dict, size: int, frames: list[int],
             export: ExportSettings | None = None, save: Path | None = None) -> dict:
    """Fit, then score the field (and, with `export` settings, the exported GLBs) on the held-out views."""
    config = configure(preset, changes)
    wall, cpu = time.perf_counter(), time.process_time()
    field = fit_4d(scene.train_rgb, scene.train_mask, scene.train_cameras, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if save is not None:  # for bench/bench_export.py --field
        torch.save(field, save)
    num_frames = scene.heldout_rgb.shape[1]
    start = time.perf_counter()
    rgb, acc = render_field(field, scene.heldout_cameras, frames, num_frames, size, config.num_samples)
    render_seconds = (time.perf_counter() - start) / (len(frames) * scene.heldout_cameras.num_views_total)
    train = render_field(field, scene.train_cameras, frames, num_frames, size, config.num_samples)[0]
    result = {
        "iterations": config.iterations, "wall": wall, "cpu": cpu, "render_seconds": render_seconds,
        "train_psnr": pooled_psnr(train, scene.train_rgb[:, frames]),
        "field": image_scores(rgb, acc, scene.heldout_rgb[:, frames], scene.heldout_mask[:, frames],
                              scene.heldout_cameras, frames),
    }
    if export is not None:
        result["glb"] = {source: glb_scores(field, scene, export, source, size, frames) for source in GLB_SOURCES}
    return result


def baselines(scene: RealScene) -> dict[str, float]:
    """The README's reference points, recomputed: all white, nearest train view, frame 0 shown at every frame."""
    truth = scene.heldout_rgb
    nearest = [int((scene.train_cameras.view_directions() @ d).argmax())
               for d in scene.heldout_cameras.view_directions()]
    return {
        "all-white image": pooled_psnr(torch.ones_like(truth), truth),
        "nearest train view's ground truth (ties to the first view)": pooled_psnr(scene.train_rgb[nearest], truth),
        "perfect but static (frame 0 at every frame)": pooled_psnr(truth[:, :1].expand_as(truth), truth),
    }


def procedural_curve(settings: Settings) -> list[dict]:
    size, frames = settings.procedural_size, settings.procedural_frames
    train = render_scene(PROCEDURAL_TRAIN, frames, size, size)
    truth = render_scene(PROCEDURAL_HELD_OUT, frames, size, size)
    rows = []
    for iterations in settings.procedural_iterations:
        config = configure("default", {**settings.fit_changes, "iterations": iterations})
        start = time.perf_counter()
        field = fit_4d(train.rgb, train.mask, PROCEDURAL_TRAIN, config)
        seconds = time.perf_counter() - start
        rgb, _ = render_videos(field, PROCEDURAL_HELD_OUT, frames, size, size)
        rows.append({"iterations": iterations, "seconds": seconds,
                     **video_metrics(rgb.flatten(0, 1), truth.rgb.flatten(0, 1))})
    return rows


def run(settings: Settings, out: Path | None, ablation: bool = False, save_field: Path | None = None,
        procedural: bool = True) -> dict:
    torch.manual_seed(0)
    load_before = load_average()
    layouts = {}
    for layout in settings.layouts:
        scene = load_layout(layout, settings.size)
        num_frames = scene.heldout_rgb.shape[1]
        frames = list(range(0, num_frames, settings.frames_stride))
        save = None if save_field is None else save_field.with_name(f"{save_field.stem}_{LAYOUTS[layout]}.pt")
        layouts[layout] = {**real_fit(scene, settings.preset, settings.fit_changes, settings.size, frames,
                                      settings.export, save), "baselines": baselines(scene)}
    rows = {}
    if ablation:
        scene = load_layout(settings.ablation_layout, settings.size)
        every_fourth = list(range(0, scene.heldout_rgb.shape[1], max(4, settings.frames_stride)))
        for name in settings.ablation_variants or ABLATION:
            changes = {**settings.fit_changes, "iterations": settings.ablation_iterations, **ABLATION[name]}
            rows[name] = real_fit(scene, settings.preset, changes, settings.size, every_fourth)
    results = {"layouts": layouts, "ablation": rows, "procedural": procedural_curve(settings) if procedural else [],
               "load": (load_before, load_average())}
    if out is not None:
        out.write_text(report(settings, results))
    return results


def sentence(lead: str, parts: list[str]) -> str:
    return lead + ", ".join(parts) + "."


def layout_report(layout: str, r: dict, settings: Settings) -> list[str]:
    field, glb = r["field"], r.get("glb", {})
    columns = [("field", field)] + [(f"GLB, texture from the {source}", glb[source]) for source in glb]
    lines = [
        f"## {layout} (`../shared/reference/{LAYOUTS[layout]}/`, {settings.size} px, 21 frames)",
        "",
        f"`FitConfig.preset(\"{settings.preset}\")` ({r['iterations']} iterations). PSNR pooled over every pixel of "
        "the 3 held-out views × scored frames; *inside the object*: pixels where the truth or the render has the "
        "object (opacity > 0.5).",
        "",
        "| held-out | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
        "| PSNR, whole image (dB) | " + " | ".join(f"{c['psnr']:.2f}" for _, c in columns) + " |",
        "| PSNR, inside the object (dB) | " + " | ".join(f"{c['psnr_inside']:.2f}" for _, c in columns) + " |",
        "| SSIM | " + " | ".join(f"{c['ssim']:.4f}" for _, c in columns) + " |",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| train-view PSNR (field) | {r['train_psnr']:.2f} dB |",
        f"| fit wall time / CPU time | {r['wall']:.0f} s / {r['cpu']:.0f} s |",
        f"| field render time per {settings.size}² image | {r['render_seconds']:.3f} s |",
    ]
    lines += [f"| export time, texture from the {source} | {g['export_seconds']:.0f} s |" for source, g in glb.items()]
    if "views" in glb:
        lines.append(f"| texels seen by at least one view | {100 * glb['views']['view_coverage']:.1f} % |")
    lines += [
        "",
        "Per held-out view (elevation, azimuth), PSNR whole / inside the object (dB):",
        "",
        "| view | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [f"| {view} | " + " | ".join(f"{c['per_view'][view][0]:.2f} / {c['per_view'][view][1]:.2f}"
                                           for _, c in columns) + " |" for view in field["per_view"]]
    lines += [
        "",
        "Per frame, PSNR whole / inside the object (dB):",
        "",
        "| frame | " + " | ".join(name for name, _ in columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    lines += [f"| {f} | " + " | ".join(f"{c['per_frame'][f][0]:.2f} / {c['per_frame'][f][1]:.2f}"
                                        for _, c in columns) + " |" for f in field["per_frame"]]
    lines += [
        "",
        sentence("Where the field's held-out error comes from (share of the squared error): ",
                 [f"{name} {share:.0%}" for name, share in field["error_shares"].items()]),
    ]
    if "views" in glb:
        lines += ["", sentence("The GLB textured from the views: ",
                               [f"{name} {share:.0%}" for name, share in glb["views"]["error_shares"].items()])]
    lines += [
        "",
        sentence("Reference points on the same held-out views: ",
                 [f"{name} {value:.2f} dB" for name, value in r["baselines"].items()]),
        "",
    ]
    return lines


DEGRADED_HEADING = "## Views that disagree (`bench/bench_degraded_views.py`, docs/bench_degraded_views.md)"


def degraded_section() -> list[str]:
    """The degraded-views runs kept by bench_degraded_views.py (none: no section)."""
    degraded = stored_rows()
    if not degraded:
        return []
    return [DEGRADED_HEADING, "",
            "The same fit from degraded training views: every novel view with its own colour/exposure shift, blur "
            "and 2–3° camera turn (its nominal camera kept), one view 2 frames late; held-out PSNR over every 2nd "
            "frame. Defects, settings and date: docs/bench_degraded_views.md.", "", *results_table(degraded), ""]


def report(settings: Settings, results: dict) -> str:
    machine = (
        f"Generated by `bench/bench_nerf4d.py` on {datetime.date.today().isoformat()}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device cpu. Load average (1/5/15 min) before: {results['load'][0]}, "
        f"after: {results['load'][1]} (wall times grow with other processes on the cores; CPU time less so)."
    )
    lines = ["# 4D fit benchmark", "", machine, "",
             "The dev scene is an animated game character (maidroid walk, pixel-art texture, CC BY-SA 4.0) rendered "
             "in both official SV4D 2.0 layouts, scored on 3 held-out views: (15°, 90°), (0°, 210°), (−10°, 330°). "
             "What the numbers mean and what limits them: docs/nerf4d_analysis.md.", ""]
    for layout, r in results["layouts"].items():
        lines += layout_report(layout, r, settings)
    if results["ablation"]:
        lines += [
            f"## Ablation ({settings.ablation_layout}, {settings.ablation_iterations} iterations, held-out frames "
            "every 4th)",
            "",
            "| variant | held-out PSNR (dB) | inside the object (dB) | train PSNR (dB) | CPU time (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {name} | {r['field']['psnr']:.2f} | {r['field']['psnr_inside']:.2f} | {r['train_psnr']:.2f} | "
                  f"{r['cpu']:.0f} |" for name, r in results["ablation"].items()]
        lines.append("")
    lines += degraded_section()
    if results["procedural"]:
        lines += [
            "## Procedural scene (regression check)",
            "",
            f"`sv4d_lib.synthetic.default_scene()`, {settings.procedural_frames} frames, {settings.procedural_size}² "
            "px, trained on the 8-view orbit at elevation 10° (9 views), held-out azimuths 52.5/142.5/232.5/315°; "
            "mean per-image PSNR.",
            "",
            "| iterations | wall time (s) | PSNR (dB) | SSIM |",
            "|---:|---:|---:|---:|",
        ]
        lines += [f"| {r['iterations']} | {r['seconds']:.1f} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
                  for r in results["procedural"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--preset", default="default", help="fit preset of the real-scene rows")
    parser.add_argument("--layout", choices=list(LAYOUTS), action="append", help="only these layouts (repeatable)")
    parser.add_argument("--ablation", action="store_true", help="also run the ablation (about an hour more)")
    parser.add_argument("--no-procedural", action="store_true", help="skip the procedural regression rows")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_nerf4d.md")
    parser.add_argument("--save-field", type=Path, help="torch.save each layout's field as <stem>_<folder>.pt")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else Settings(preset=args.preset)
    if args.layout:
        settings = dataclasses.replace(settings, layouts=tuple(args.layout))
    results = run(settings, args.out, ablation=args.ablation, save_field=args.save_field,
                  procedural=not args.no_procedural)
    print(report(settings, results))


if __name__ == "__main__":
    main()
