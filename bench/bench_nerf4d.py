"""4D-fit benchmark. Writes docs/bench_nerf4d.md.

1. The real dev scene (`../shared/reference/real_scenes/`, an animated game character, 5 training views): fit with
   a preset, then held-out PSNR/SSIM (whole image and inside the union of masks), train PSNR, per-frame held-out
   PSNR, fit wall and CPU time, frame render time, and a diagnosis (underfit / motion / generalisation).
2. An ablation on the real scene: each design choice switched off on its own at the same iteration count.
3. The procedural scene (`sv4d_lib.synthetic`) held-out quality against iterations, to catch regressions.

    .venv/bin/python bench/bench_nerf4d.py            # full run (about an hour on 2 quiet CPU cores)
    .venv/bin/python bench/bench_nerf4d.py --quick    # smoke run (seconds)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.real_scene import RealScene, load_real_scene, pooled_psnr  # noqa: E402
from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.nerf import FitConfig, fit_4d  # noqa: E402
from sv4d_lib.nerf.deformation import DeformationConfig  # noqa: E402
from sv4d_lib.nerf.metrics import video_metrics  # noqa: E402
from sv4d_lib.nerf.render import render_videos, render_views  # noqa: E402
from sv4d_lib.synthetic import render_scene  # noqa: E402

PROCEDURAL_TRAIN = OrbitCameras.preset("8v", 10.0)  # the 8-view model's orbit, input view included
PROCEDURAL_HELD_OUT = OrbitCameras((10.0,) * 4, (52.5, 142.5, 232.5, 315.0))  # between training views


@dataclasses.dataclass
class Settings:
    size: int = 128
    preset: str = "default"
    ablation_iterations: int = 1000
    frames_stride: int = 1  # held-out frames scored (every k-th); the ablation uses every 4th
    procedural_size: int = 64
    procedural_frames: int = 5
    procedural_iterations: tuple[int, ...] = (600, 1500)
    fit_changes: dict = dataclasses.field(default_factory=dict)  # applied to every fit (the quick run shrinks them)
    ablation_variants: tuple[str, ...] | None = None  # None: all of ABLATION


ABLATION: dict[str, dict] = {
    "all on (the default design)": {},
    "no per-frame visual hulls": {"hulls": False},
    "deformation MLP without its hash grid (1 coarse level)": {
        "field_deformation": {"grid": {"otype": "HashGrid", "n_levels": 1, "n_features_per_level": 2,
                                       "log2_hashmap_size": 14, "base_resolution": 8, "per_level_scale": 1.0}}},
    "no coarse-to-fine annealing": {"anneal_fraction": 0.0},
    "no progressive frames": {"progressive": False},
    "no visibility weighting": {"visibility": False},
    "no opacity total variation": {"tv_weight": 0.0},
}

QUICK_CHANGES = {"rays_per_step": 256, "num_samples": 32}
QUICK = Settings(size=128, preset="draft", ablation_iterations=6, frames_stride=20, procedural_size=24,
                 procedural_frames=2, procedural_iterations=(6,), fit_changes={**QUICK_CHANGES, "iterations": 6},
                 ablation_variants=("no per-frame visual hulls",))


def configure(preset: str, changes: dict) -> FitConfig:
    changes = dict(changes)
    deformation = changes.pop("field_deformation", None)
    config = FitConfig.preset(preset, device="cpu", preview_every=10**9, **changes)
    if deformation is not None:
        config.field = dataclasses.replace(config.field, deformation=DeformationConfig(**deformation))
    return config


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def error_shares(rgb: torch.Tensor, acc: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Where the held-out squared error comes from: shares of the total over pixel classes (fit opacity and true
    mask thresholded at 0.5). Too deep or bulging shapes show up as "covered by the fit, background in truth"."""
    error = (rgb - truth).square().mean(dim=-1)
    fit, real = acc > 0.5, mask > 0.5
    total = float(error.sum())
    classes = {"fit covers, truth is background": fit & ~real, "truth is object, fit misses it": ~fit & real,
               "both object (colour, texture placement)": fit & real, "both background": ~fit & ~real}
    return {name: float(error[where].sum()) / total for name, where in classes.items()}


def score_real(field, scene: RealScene, size: int, frames: list[int], num_samples: int) -> dict:
    """Held-out and train scores of a fitted field on the given frames, and the render time per image."""
    num_frames = scene.heldout_rgb.shape[1]
    start = time.perf_counter()
    def render(cameras: OrbitCameras) -> tuple[torch.Tensor, torch.Tensor]:
        views = [render_views(field, cameras, f / (num_frames - 1), size, size, num_samples) for f in frames]
        return torch.stack([v[0] for v in views], dim=1), torch.stack([v[1] for v in views], dim=1)

    heldout, heldout_acc = render(scene.heldout_cameras)
    render_seconds = (time.perf_counter() - start) / (len(frames) * scene.heldout_cameras.num_views_total)
    train = render(scene.train_cameras)[0]
    truth = scene.heldout_rgb[:, frames]
    union = (scene.heldout_mask[:, frames] > 0).any(dim=1, keepdim=True).expand(-1, len(frames), -1, -1)
    per_frame = [pooled_psnr(heldout[:, k], truth[:, k]) for k in range(len(frames))]
    cameras = scene.heldout_cameras
    per_view = {f"({e:g}°, {a:g}°)": pooled_psnr(heldout[v], truth[v])
                for v, (e, a) in enumerate(zip(cameras.elevations_deg, cameras.azimuths_deg))}
    return {
        "heldout_psnr": pooled_psnr(heldout, truth),
        "heldout_psnr_mask": pooled_psnr(heldout, truth, union),
        "heldout_ssim": video_metrics(heldout.flatten(0, 1), truth.flatten(0, 1))["ssim"],
        "train_psnr": pooled_psnr(train, scene.train_rgb[:, frames]),
        "per_frame": dict(zip(frames, per_frame)),
        "per_view": per_view,
        "error_shares": error_shares(heldout, heldout_acc, truth, scene.heldout_mask[:, frames]),
        "render_seconds": render_seconds,
    }


def real_fit(scene: RealScene, preset: str, changes: dict, size: int, frames: list[int],
             save: Path | None = None) -> dict:
    config = configure(preset, changes)
    wall, cpu = time.perf_counter(), time.process_time()
    field = fit_4d(scene.train_rgb, scene.train_mask, scene.train_cameras, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if save is not None:  # for bench/bench_export.py --field
        torch.save(field, save)
    scores = score_real(field, scene, size, frames, config.num_samples)
    return {"iterations": config.iterations, "wall": wall, "cpu": cpu, **scores}


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


def run(settings: Settings, out: Path | None, ablation: bool = True, save_field: Path | None = None) -> dict:
    torch.manual_seed(0)
    scene = load_real_scene(settings.size)
    num_frames = scene.heldout_rgb.shape[1]
    load_before = load_average()
    all_frames = list(range(0, num_frames, settings.frames_stride))
    main = real_fit(scene, settings.preset, settings.fit_changes, settings.size, all_frames, save_field)
    rows = {}
    if ablation:
        every_fourth = list(range(0, num_frames, max(4, settings.frames_stride)))
        for name in settings.ablation_variants or ABLATION:
            changes = ABLATION[name]
            changes = {**settings.fit_changes, "iterations": settings.ablation_iterations, **changes}
            rows[name] = real_fit(scene, settings.preset, changes, settings.size, every_fourth)
    results = {"main": main, "ablation": rows, "baselines": baselines(scene), "procedural": procedural_curve(settings),
               "load": (load_before, load_average())}
    if out is not None:
        out.write_text(report(settings, results))
    return results


def diagnosis(main: dict) -> str:
    frames = main["per_frame"]
    first, worst = frames[min(frames)], min(frames.values())
    gap = main["train_psnr"] - main["heldout_psnr"]
    return (f"Train views {main['train_psnr']:.2f} dB vs held-out {main['heldout_psnr']:.2f} dB (generalisation gap "
            f"{gap:.2f} dB); held-out frame 0 {first:.2f} dB vs the worst frame {worst:.2f} dB (motion gap "
            f"{first - worst:.2f} dB).")


def sentence(lead: str, parts: list[str]) -> str:
    return lead + ", ".join(parts) + "."


def report(settings: Settings, results: dict) -> str:
    main = results["main"]
    machine = (
        f"Generated by `bench/bench_nerf4d.py` on {datetime.date.today().isoformat()}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device cpu. Load average (1/5/15 min) before: {results['load'][0]}, "
        f"after: {results['load'][1]} (wall times grow with other processes on the cores; CPU time less so)."
    )
    lines = [
        "# 4D fit benchmark",
        "",
        machine,
        "",
        "## Real dev scene (maidroid, 128 px, 5 training views, 21 frames)",
        "",
        f"`FitConfig.preset(\"{settings.preset}\")` ({main['iterations']} iterations). PSNR is pooled over every "
        "pixel of the 3 held-out views × scored frames, as in the scene's README.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| held-out PSNR, whole image | {main['heldout_psnr']:.2f} dB |",
        f"| held-out PSNR, inside the union of masks | {main['heldout_psnr_mask']:.2f} dB |",
        f"| held-out SSIM | {main['heldout_ssim']:.4f} |",
        f"| train-view PSNR | {main['train_psnr']:.2f} dB |",
        f"| fit wall time / CPU time | {main['wall']:.0f} s / {main['cpu']:.0f} s |",
        f"| render time per 128² image | {main['render_seconds']:.3f} s |",
        "",
        sentence("Reference points on the same held-out views: ",
                 [f"{name} {value:.2f} dB" for name, value in results["baselines"].items()]),
        "",
        sentence("Held-out PSNR per frame (dB): ", [f"{f}: {v:.2f}" for f, v in main["per_frame"].items()]),
        "",
        sentence("Held-out PSNR per view (elevation, azimuth): ",
                 [f"{view}: {v:.2f} dB" for view, v in main["per_view"].items()]),
        "",
        sentence("Where the held-out error comes from (share of the squared error): ",
                 [f"{name} {share:.0%}" for name, share in main["error_shares"].items()]),
        "",
        diagnosis(main),
        "",
        "What these numbers mean and what limits them: docs/nerf4d_analysis.md.",
    ]
    if results["ablation"]:
        lines += [
            "",
            f"## Ablation on the real scene ({settings.ablation_iterations} iterations, held-out frames every 4th)",
            "",
            "| variant | held-out PSNR (dB) | inside masks (dB) | train PSNR (dB) | CPU time (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {name} | {r['heldout_psnr']:.2f} | {r['heldout_psnr_mask']:.2f} | {r['train_psnr']:.2f} | "
                  f"{r['cpu']:.0f} |" for name, r in results["ablation"].items()]
    lines += [
        "",
        "## Procedural scene (regression check)",
        "",
        f"`sv4d_lib.synthetic.default_scene()`, {settings.procedural_frames} frames, {settings.procedural_size}² px, "
        "trained on the 8-view orbit at elevation 10° (9 views), held-out azimuths 52.5/142.5/232.5/315°; mean "
        "per-image PSNR.",
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
    parser.add_argument("--preset", default="default", help="fit preset of the main real-scene row")
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation (saves most of the time)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_nerf4d.md")
    parser.add_argument("--save-field", type=Path, help="torch.save the main fit's field here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else Settings(preset=args.preset)
    results = run(settings, args.out, ablation=not args.no_ablation, save_field=args.save_field)
    print(report(settings, results))


if __name__ == "__main__":
    main()
