"""Views that disagree: held-out PSNR of the 4D fit from clean vs degraded views (bench/degraded_views.py) on the
real dev scene, per view set and fitter setting. Writes docs/bench_degraded_views.md.

View sets (the same animated asset, frames and held-out views in both shared scene folders):
* "5 views (4-view layout)": `real_scenes` (azimuths 0/60/120/180/240°, elevation 5°);
* "9 views (8-view layout)": `real_scenes_9v` (0/30/75/…/330°);
* "12 views (4-view + 8-view merged)": both merged by `sv4d_lib.merge_views` (what SV4D2 Merge Views gives the
  dense template), degraded after merging, so every novel view gets its own defects.

Each run fits with `FitConfig.preset(--preset)` plus the run's changes and scores the 3 held-out views (pooled
PSNR over every pixel, and inside the union of the true masks) on every `--frames-stride`-th frame.

    .venv/bin/python bench/bench_degraded_views.py                 # every run of RUNS: ~9 fits, ~1.5 h on 2 cores
    .venv/bin/python bench/bench_degraded_views.py --runs 0,1,2    # a subset (indices into RUNS, listed by --list)
    .venv/bin/python bench/bench_degraded_views.py --quick         # smoke run of the harness (seconds per fit)
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.degraded_views import Degradation, degrade  # noqa: E402
from bench.real_scene import SCENES, RealScene, load_real_scene, pooled_psnr  # noqa: E402
from sv4d_lib.atomic import atomic_file  # noqa: E402
from sv4d_lib.merge_views import Pass, apply_merge, plan_merge  # noqa: E402
from sv4d_lib.nerf import FitConfig, fit_4d  # noqa: E402
from sv4d_lib.nerf.render import render_views  # noqa: E402

VIEW_SETS = ("5 views (4-view layout)", "9 views (8-view layout)", "12 views (4-view + 8-view merged)")
# The fitter's robustness mechanisms, switched one at a time (FitConfig fields).
SETTINGS: dict[str, dict] = {
    "default": {},
    "no view alignment": {"view_alignment": False},
    "no view refinement (silhouette alignment only)": {"view_refinement": False},
    "visibility weighting (the paper's)": {"visibility": True},
    "strict hulls (no view may disagree)": {"hull_tolerance": 0},
    "hull margin 2 px": {"hull_margin_px": 2.0},
    "no visual hulls": {"hulls": False},
}
# (view set, degraded?, setting): the comparisons first (clean vs degraded with the defaults on the 9-view
# scene, which mechanism earns the robustness), then the view sets.
RUNS: list[tuple[str, bool, str]] = [
    (VIEW_SETS[1], False, "default"),
    (VIEW_SETS[1], True, "default"),
    (VIEW_SETS[1], True, "no view alignment"),
    (VIEW_SETS[1], True, "visibility weighting (the paper's)"),
    (VIEW_SETS[1], True, "strict hulls (no view may disagree)"),
    (VIEW_SETS[1], True, "hull margin 2 px"),
    (VIEW_SETS[2], False, "default"),
    (VIEW_SETS[2], True, "default"),
    (VIEW_SETS[0], False, "default"),
    (VIEW_SETS[0], True, "default"),
    (VIEW_SETS[1], True, "no view refinement (silhouette alignment only)"),
]
DEFAULT_OUT = ROOT / "docs" / "bench_degraded_views.md"
QUICK_CHANGES = {"iterations": 6, "rays_per_step": 256, "num_samples": 32, "resolution": 32}


def view_set(name: str, size: int) -> RealScene:
    """The training views of a view set with the dev scene's held-out views."""
    five = load_real_scene(size)
    if name == VIEW_SETS[0]:
        return five
    nine = load_real_scene(size, folder=SCENES.parent / "real_scenes_9v")
    if name == VIEW_SETS[1]:
        return nine
    plan = plan_merge([Pass(scene.train_rgb, scene.train_cameras) for scene in (five, nine)])
    return dataclasses.replace(nine, train_rgb=apply_merge(plan, [five.train_rgb, nine.train_rgb]),
                               train_mask=apply_merge(plan, [five.train_mask, nine.train_mask]),
                               train_cameras=plan.cameras)


def heldout_scores(field, scene: RealScene, frames: list[int], num_samples: int) -> dict[str, float]:
    """Pooled held-out PSNR (whole image and inside the union of the true masks over the scored frames)."""
    size = scene.heldout_rgb.shape[2]
    last = scene.heldout_rgb.shape[1] - 1
    rendered = torch.stack([render_views(field, scene.heldout_cameras, f / last, size, size, num_samples)[0]
                            for f in frames], dim=1)
    truth = scene.heldout_rgb[:, frames]
    union = (scene.heldout_mask[:, frames] > 0).any(dim=1, keepdim=True).expand(-1, len(frames), -1, -1)
    return {"psnr": pooled_psnr(rendered, truth), "psnr_mask": pooled_psnr(rendered, truth, union)}


def run(indices: list[int], preset: str, changes: dict, size: int, stride: int, degradation: Degradation) -> list[dict]:
    rows = []
    for index in indices:
        name, degraded, setting = RUNS[index]
        scene = view_set(name, size)
        rgb, mask, defects = scene.train_rgb, scene.train_mask, None
        if degraded:
            rgb, mask, defects = degrade(rgb, mask, scene.train_cameras, degradation)
        config = FitConfig.preset(preset, device="cpu", preview_every=10**9, **{**changes, **SETTINGS[setting]})
        wall = time.perf_counter()
        field = fit_4d(rgb, mask, scene.train_cameras, config)
        wall = time.perf_counter() - wall
        frames = list(range(0, scene.heldout_rgb.shape[1], stride))
        rows.append({"run": index, "views": name, "degraded": degraded, "setting": setting, "wall": wall,
                     "defects": None if defects is None else [d and dataclasses.asdict(d) for d in defects],
                     **heldout_scores(field, scene, frames, config.num_samples)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "defects"}), flush=True)
    return rows


def defects_table(defects: list) -> list[str]:
    lines = ["| view | exposure | colour gains (r, g, b) | blur σ (px) | pose error (°) | frame offset |",
             "|---:|---:|---|---:|---:|---:|"]
    for view, d in enumerate(defects):
        if d is not None:
            lines.append(f"| {view} | ×{d['exposure']:.3f} | {', '.join(f'{g:.3f}' for g in d['gains'])} | "
                         f"{d['blur_sigma_px']:.2f} | {d['rotation_deg']:.2f} | {d['timing_offset']:+d} |")
    return lines


def results_table(rows: list[dict]) -> list[str]:
    """Markdown table of the runs: scores, and each degraded run against the clean run of its view set."""
    clean = {(r["views"], r["setting"]): r["psnr"] for r in rows if not r["degraded"]}
    lines = ["| views | views are | fitter setting | held-out PSNR (dB) | inside masks (dB) | vs clean, same setting | "
             "fit wall (s) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        reference = clean.get((r["views"], r["setting"]), clean.get((r["views"], "default")))
        delta = "" if not r["degraded"] or reference is None else f"{r['psnr'] - reference:+.2f}"
        lines.append(f"| {r['views']} | {'degraded' if r['degraded'] else 'clean'} | {r['setting']} | "
                     f"{r['psnr']:.2f} | {r['psnr_mask']:.2f} | {delta} | {r['wall']:.0f} |")
    return lines


def resolved_settings(preset: str, changes: dict | None = None) -> dict:
    """The fitter settings `preset` (with `changes`) resolves to now, as stored in the key (JSON types)."""
    return json.loads(json.dumps(dataclasses.asdict(FitConfig.preset(preset, **(changes or {})))))


def stored_rows(out: Path = DEFAULT_OUT) -> list[dict]:
    """The runs kept beside the report (`<out>.json`), in RUNS order; none when the bench has not run or ran with
    settings the preset no longer resolves to (a changed default: the rows describe another fitter)."""
    store = out.with_suffix(".json")
    if not store.exists():
        return []
    kept = json.loads(store.read_text())
    return kept["rows"] if kept["key"]["fitter"] == resolved_settings(kept["key"]["preset"]) else []


def report(rows: list[dict], preset: str, size: int, stride: int, degradation: Degradation, load: tuple) -> str:
    lines = [
        "# 4D fit from views that disagree",
        "",
        f"Generated by `bench/bench_degraded_views.py` on {datetime.date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}; load average before "
        f"{load[0]:.1f}, after {os.getloadavg()[0]:.1f}. Fit preset `{preset}` at {size} px; held-out PSNR pooled "
        f"over the 3 held-out views, frames 0, {stride}, 2·{stride}, … (wall times: other jobs shared the cores). Degradation: `{degradation}` (bench/degraded_views.py): "
        "every novel view gets its own colour/exposure shift, blur and pose error (a homography about the image "
        "centre, the nominal camera kept); one view shows the clip 2 frames late.",
        "",
        *results_table(rows),
    ]
    degraded = next((r for r in rows if r["degraded"]), None)
    if degraded is not None:
        lines += ["", f"Defects drawn for the {degraded['views']} set (seed {degradation.seed}; view 0, the input "
                  "view, is real footage and untouched):", "", *defects_table(degraded["defects"])]
    lines += ["", "\"vs clean\" compares with the clean run of the same view set and setting (or its default when "
              "that was not run)."]
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str) -> None:
    with atomic_file(path) as temporary:
        temporary.write_text(text)


def keep_rows(store: Path, key: dict, rows: list[dict]) -> list[dict]:
    """Add `rows` to the runs kept in `store` under the same `key` (preset and its settings, size, stride, seed),
    replacing earlier rows of the same runs, and write them back: each fit takes minutes, so runs accumulate across
    invocations. Rows kept under another key are dropped (their numbers are not comparable). Returns all kept rows,
    in RUNS order."""
    kept = json.loads(store.read_text()) if store.exists() else {}
    new = {r["run"] for r in rows}
    earlier = [r for r in kept.get("rows", []) if r["run"] not in new] if kept.get("key") == key else []
    rows = sorted(earlier + rows, key=lambda r: r["run"])
    atomic_write(store, json.dumps({"key": key, "rows": rows}, indent=1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", help="comma-separated indices into RUNS (default: all)")
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--size", type=int, default=128, help="scene size: 128 (both folders have it)")
    parser.add_argument("--frames-stride", type=int, default=2, help="score every k-th held-out frame")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-view defects")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 iterations at 32 px")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.list:
        for index, (name, degraded, setting) in enumerate(RUNS):
            print(f"{index}: {name}, {'degraded' if degraded else 'clean'}, {setting}")
        return
    torch.set_num_threads(args.threads)
    indices = [int(i) for i in args.runs.split(",")] if args.runs else list(range(len(RUNS)))
    degradation = Degradation(seed=args.seed)
    load = os.getloadavg()
    changes = QUICK_CHANGES if args.quick else {}
    stride = 20 if args.quick else args.frames_stride
    rows = run(indices, args.preset, changes, args.size, stride, degradation)
    # the preset's resolved settings belong to the key: when a default changes, the earlier rows are dropped
    key = {"preset": args.preset, "size": args.size, "stride": stride, "seed": args.seed,
           "fitter": resolved_settings(args.preset, changes)}
    rows = keep_rows(args.out.with_suffix(".json"), key, rows)
    text = report(rows, args.preset, args.size, stride, degradation, load)
    atomic_write(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
