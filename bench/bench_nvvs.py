"""Novel-view video sampling: time and peak memory of one chunk (T frames × V views); writes docs/bench_nvvs.md.

Usage: `python bench/bench_nvvs.py [--steps N] [--size PX]`.

Cases (each in a fresh subprocess, so CPU peak memory = that run's ru_maxrss):
* `pipeline` (CPU, reduced size): the pack's nodes end to end inside an in-process ComfyUI — SV4D2 Load Model
  (tiny engine file: golden tiny UNet + VAE, tiny CLIP) → Prepare Video → Cameras → Encode Video → Sample NVVS
  (sampling + decoding every view) → Preview Image. Also timed without the sampler node (load + prepare + encode),
  so the difference is sampling + decoding. Needs the test host (.host/ComfyUI) and ../shared/reference/golden.
* `sampler` (CPU, reduced size): the reference loop `sv4d_lib.sampling.sample_nvvs` with the tiny UNet config.
* `sampler-full-4v` / `sampler-full-8v` (CUDA only): the production-size UNet (random weights, fp32 under fp16
  autocast as the official pipeline runs) at 576² (72² latents), the official 50 steps.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sv4d_lib import conditioning, guidance, sampling  # noqa: E402
from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.model import SV4D2UNet  # noqa: E402

TINY = dict(model_channels=32, adm_in_channels=128, context_dim=64, num_head_channels=16)
# name: (T, V, 4-view model?, device)
CASES = {
    "pipeline": (12, 4, True, "cpu"),
    "sampler": (12, 4, True, "cpu"),
    "sampler-full-4v": (12, 4, True, "cuda"),
    "sampler-full-8v": (5, 8, False, "cuda"),
}


def peak_memory_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def random_conds(num_frames: int, num_views: int, latent: int, context_dim: int, dims: tuple[int, int, int],
                 device: str) -> tuple[dict, dict]:
    """Conditioning of the official shapes (random CLIP and latents, real camera vector)."""
    g = torch.Generator().manual_seed(0)
    preset = "4v" if num_views == 4 else "8v"
    vector = conditioning.camera_vector(OrbitCameras.preset(preset), num_frames, dims)
    rows, _ = conditioning.latent_rows(
        torch.randn(num_frames, context_dim, generator=g), torch.randn(num_frames, 4, latent, latent, generator=g),
        vector, torch.randn(num_views, 4, latent, latent, generator=g), num_views, sigma_dim=dims[0],
    )
    cond = {k: v.to(device) for k, v in conditioning.official_conds(rows, num_frames, num_views).items()}
    uncond = {k: torch.zeros_like(v) for k, v in cond.items()}
    uncond["vector"] = conditioning.uncond_vector(cond["vector"], dims[0])
    return cond, uncond


def run_sampler(case: str, size: int, steps: int) -> dict:
    num_frames, num_views, is_4v, device = CASES[case]
    full = device == "cuda"
    overrides = {} if full else TINY
    torch.manual_seed(0)
    net = SV4D2UNet(**overrides, use_3d_attention=is_4v, device="meta").to_empty(device=device)
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0.0, 0.02)
    latent = size // 8
    cond, uncond = random_conds(num_frames, num_views, latent, net.context_dim,
                                conditioning.vector_dims(net.context_dim), device)
    noise = torch.randn(num_frames * num_views, 4, latent, latent, device=device)
    grid = guidance.cfg_grid("official_4v" if is_4v else "official_8v", num_frames, num_views)
    step_times: list[float] = []

    def mark(i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if full:
            torch.cuda.synchronize()
        step_times.append(time.perf_counter())

    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=full)
    with torch.inference_mode(), autocast:
        start = time.perf_counter()
        sampling.sample_nvvs(net, noise, cond, uncond, sampling.edm_sigmas(steps), grid, num_frames, num_views,
                             callback=mark)
    per_step = [b - a for a, b in zip([start, *step_times[:-1]], step_times)]
    return {"seconds": step_times[-1] - start, "seconds_per_step": sorted(per_step)[len(per_step) // 2],
            "peak_mib": peak_memory_mib(device), "steps": steps, "size": size, "T": num_frames, "V": num_views,
            "network": "production" if full else "tiny"}


def pipeline_prompt(image: str, ckpt: str, size: int, steps: int, sample: bool) -> dict:
    prompt = {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": ckpt, "variant": "auto", "precision": "fp32", "download": False}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 12}},
        "4": {"class_type": "SV4D2PrepareVideo",
              "inputs": {"frames": ["3", 0], "size": size, "mode": "official", "frame_ratio": 0.9}},
        "5": {"class_type": "SV4D2Cameras", "inputs": {"preset": "4v", "elevation_deg": 0.0,
                                                      "cameras": json.dumps({"elevations_deg": [0, 0],
                                                                             "azimuths_deg": [0, 90]})}},
        "6": {"class_type": "SV4D2EncodeVideo",
              "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["4", 0], "cameras": ["5", 0]}},
    }
    if sample:
        prompt["7"] = {"class_type": "SV4D2SampleNVVS",
                       "inputs": {"model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "cameras": ["5", 0],
                                  "vae": ["1", 2], "steps": steps, "seed": 0, "grid": guidance.DEFAULT_GRID_SPEC,
                                  "decoding_t": 4, "frames": ["4", 0]}}
        prompt["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["7", 2]}}
    else:
        prompt["7"] = {"class_type": "PreviewAny", "inputs": {"source": ["6", 2]}}
    return prompt


def run_pipeline(size: int, steps: int) -> dict:
    import numpy as np
    from PIL import Image

    from headless.server import find_comfyui
    from tests.host.inprocess import InProcessComfy
    from tests.tiny_checkpoint import write_tiny_checkpoint

    host = InProcessComfy(find_comfyui(), Path(tempfile.mkdtemp(prefix="bench_nvvs_")))
    write_tiny_checkpoint(host.models_dir / "checkpoints" / "sv4d2_tiny.safetensors")
    yy, xx = np.mgrid[:256, :256]
    disc = ((yy - 128) ** 2 + (xx - 128) ** 2 < 80**2)[..., None]
    Image.fromarray(np.where(disc, [200, 60, 40], 255).astype(np.uint8)).save(host.input_dir / "object.png")
    times = {}
    for sample in (False, True):
        start = time.perf_counter()
        host.run(pipeline_prompt("object.png", "checkpoints/sv4d2_tiny.safetensors", size, steps, sample))
        times[sample] = time.perf_counter() - start
    return {"seconds": times[True], "seconds_without_sampler": times[False], "peak_mib": peak_memory_mib("cpu"),
            "steps": steps, "size": size, "T": 12, "V": 4, "network": "tiny"}


def machine() -> str:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}{gpu}; load average {load} when the report was written")


def write_report(results: dict[str, dict], path: Path) -> None:
    lines = [
        "# SV4D2 novel-view sampling benchmark",
        "",
        f"Written by `bench/bench_nvvs.py` on {datetime.date.today()} ({machine()}).",
        "One chunk = T frames × V novel views; CFG runs uncond + cond in one UNet batch per step.",
        "",
        "| case | network | T×V | size | steps | total s | s/step | s without sampler | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case, r in results.items():
        if "error" in r:
            lines.append(f"| {case} | – | – | – | – | failed: {r['error']} | | | |")
            continue
        per_step = f"{r['seconds_per_step']:.3f}" if "seconds_per_step" in r else "–"
        without = f"{r['seconds_without_sampler']:.2f}" if "seconds_without_sampler" in r else "–"
        lines.append(f"| {case} | {r['network']} | {r['T']}×{r['V']} | {r['size']}² | {r['steps']} | "
                     f"{r['seconds']:.2f} | {per_step} | {without} | {r['peak_mib']:.0f} |")
    lines += [
        "",
        "* `pipeline`: Load Model → Prepare Video → Cameras → Encode Video → Sample NVVS (sampling and decoding all "
        "views, decoding_t 4) → Preview Image, in an in-process ComfyUI on the CPU; 'without sampler' stops after "
        "Encode Video. Peak MiB is the process's peak RSS (ComfyUI included).",
        "* `sampler`: `sample_nvvs` alone (median s/step); CPU peak MiB is the process's peak RSS, CUDA peak MiB is "
        "`torch.cuda.max_memory_allocated`.",
        "* `sampler-full-*` run only where CUDA is available (production UNet, random weights, fp16 autocast).",
    ]
    if not any(case.startswith("sampler-full") for case in results):
        lines.append("* No CUDA device was available for this run, so there are no full-size (576²) rows.")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps of the CPU cases (full-size cases: 50)")
    parser.add_argument("--size", type=int, default=128, help="frame size of the CPU cases (full-size: 576)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench_nvvs.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.case:
        result = run_pipeline(args.size, args.steps) if args.case == "pipeline" else \
            run_sampler(args.case, args.size, args.steps)
        print(json.dumps(result))
        return
    cases = [c for c, spec in CASES.items() if spec[3] == "cpu" or torch.cuda.is_available()]
    results = {}
    for case in cases:
        full = CASES[case][3] == "cuda"
        size, steps = (576, 50) if full else (args.size, args.steps)
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--size", str(size), "--steps", str(steps)],
                              capture_output=True, text=True, cwd=REPO)
        try:
            results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results[case] = {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
        print(case, results[case], flush=True)
    write_report(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
