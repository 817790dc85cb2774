"""One-shot GPU acceptance benchmark: writes the GPU figures, with the GPU's name, into docs/benchmarks.md.

    .venv/bin/python bench/gpu_acceptance.py            # on a CUDA machine: about 5-8 minutes
    .venv/bin/python bench/gpu_acceptance.py --tiny     # CPU smoke configuration (what the test runs)

Parts (each timed; a failing part is reported as failed in the table and makes the exit status 1):
1. `sample`: one full-size 4-view chunk (12 frames × 4 views, 576², 50 Euler steps, CFG batch 2), UNet weights
   and activations in fp16 and in bf16 (random weights: speed and memory do not depend on their values);
2. `unet-memory`: peak memory of one UNet forward (fp16) at 512² and 576² frames;
3. `decode`: peak memory of decoding one chunk with the KL-f8 VAE (ComfyUI's, random weights, fp32 like the
   official decode) per `decoding_t`, at 512² and 576²;
4. `compile`: one fp16 UNet forward eager vs `torch.compile` (first call = compile time, then steady state);
5. `fit`: the 4D fit (`FitConfig.preset("default")`) at 256² on the real dev scene, held-out PSNR/SSIM;
6. `hashgrid`: forward + backward of the hash encoding, tinycudann vs the torch grid (same function).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_nvvs import random_conds  # noqa: E402

from sv4d_lib import conditioning, guidance, sampling  # noqa: E402
from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.model import SV4D2UNet  # noqa: E402
from sv4d_lib.nerf import FitConfig, fit_4d  # noqa: E402
from sv4d_lib.nerf.hashgrid import DEFAULT_CONFIG, TorchHashGrid, tcnn_available  # noqa: E402
from sv4d_lib.nerf.metrics import video_metrics  # noqa: E402
from sv4d_lib.nerf.render import render_videos  # noqa: E402

DEV_SCENE = REPO.parent / "shared" / "reference" / "real_scenes" / "maidroid_256.safetensors"
SECTION_START = "<!-- gpu_acceptance:start -->"
SECTION_END = "<!-- gpu_acceptance:end -->"
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one run. `FULL` is the acceptance run; `TINY` only proves on a CPU that every part still runs."""

    network: dict  # SV4D2UNet overrides ({}: the production network)
    frames: int
    views: int
    sizes: tuple[int, ...]  # frame sides in pixels; the last one is used for sampling and compile
    steps: int
    dtypes: tuple[torch.dtype, ...]
    decoding_ts: tuple[int, ...]
    vae: dict
    fit: FitConfig
    fit_frames: int | None  # first frames of the dev scene to fit (None: all 21)
    hash_points: int
    compile_backend: str


FULL = Settings(
    network={}, frames=12, views=4, sizes=(512, 576), steps=50, dtypes=(torch.float16, torch.bfloat16),
    decoding_ts=(1, 2, 4, 8, 12), vae=SD_VAE, fit=FitConfig.preset("default", resolution=256),
    fit_frames=None, hash_points=2**21, compile_backend="inductor",
)
TINY = Settings(
    network=dict(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                 num_head_channels=16, context_dim=64, adm_in_channels=128),
    frames=2, views=4, sizes=(16, 32), steps=2, dtypes=(torch.bfloat16,), decoding_ts=(1, 2),
    vae={**SD_VAE, "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1},
    fit=FitConfig.preset("draft", iterations=2, resolution=16, lpips_weight=0.0, rays_per_step=64),
    fit_frames=2, hash_points=2**10, compile_backend="eager",
)


class Meter:
    """Wall time and peak device memory of a block (CUDA: `max_memory_allocated` above what was allocated before;
    CPU has no allocator statistics, so its peak is None)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self.peak_gib: float | None = None

    @contextlib.contextmanager
    def measure(self) -> Iterator["Meter"]:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        start = time.perf_counter()
        yield self
        if cuda:
            torch.cuda.synchronize(self.device)
            self.peak_gib = (torch.cuda.max_memory_allocated(self.device) - base) / 2**30
        self.seconds = time.perf_counter() - start


def random_unet(settings: Settings, dtype: torch.dtype, device: torch.device, **options) -> SV4D2UNet:
    torch.manual_seed(0)
    net = SV4D2UNet(**settings.network, **options, device="meta", dtype=dtype).to_empty(device=device)
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0.0, 0.02)
    return net.eval()


def unet_inputs(net: SV4D2UNet, settings: Settings, size: int, dtype: torch.dtype, device: torch.device) -> dict:
    """One CFG forward's inputs (B = 2) at `size`² frames."""
    n, latent = 2 * settings.frames * settings.views, size // 8
    g = torch.Generator().manual_seed(1)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dtype)

    return dict(x=randn(n, 8, latent, latent), timesteps=torch.full((n,), 0.25, device=device),
                context=randn(2, settings.frames, net.context_dim), y=randn(n, net.adm_in_channels),
                cond_view=randn(2 * settings.views, 4, latent, latent), num_frames=settings.frames,
                num_views=settings.views)


def in_dtype(net: SV4D2UNet, dtype: torch.dtype) -> Callable[..., torch.Tensor]:
    """The UNet as the sampler calls it: fp32 in and out (the sampler's maths stays fp32), `dtype` inside."""

    def unet(x: torch.Tensor, *args: torch.Tensor, **kwargs) -> torch.Tensor:
        return net(x.to(dtype), *args, **kwargs).float()

    return unet


def check_finite(tensor: torch.Tensor, what: str) -> None:
    if not torch.isfinite(tensor).all():
        raise RuntimeError(f"{what} produced non-finite values")


def part_sample(settings: Settings, device: torch.device) -> list[dict]:
    rows = []
    size = settings.sizes[-1]
    latent = size // 8
    for dtype in settings.dtypes:
        net = random_unet(settings, dtype, device)
        unet = in_dtype(net, dtype)
        cond, uncond = random_conds(settings.frames, settings.views, latent, net.context_dim,
                                    conditioning.vector_dims(net.context_dim), str(device))
        noise = torch.randn(settings.frames * settings.views, 4, latent, latent, device=device)
        grid = guidance.cfg_grid("official_4v", settings.frames, settings.views)
        with torch.inference_mode(), Meter(device).measure() as meter:
            out = sampling.sample_nvvs(unet, noise, cond, uncond, sampling.edm_sigmas(settings.steps), grid,
                                       settings.frames, settings.views)
        check_finite(out, f"sampling in {dtype}")
        rows.append({"what": f"sample {settings.frames}×{settings.views} at {size}², {settings.steps} steps, "
                             f"{str(dtype).removeprefix('torch.')}",
                     "seconds": meter.seconds, "per_step": meter.seconds / settings.steps, "peak_gib": meter.peak_gib})
        del net, unet
    return rows


def part_unet_memory(settings: Settings, device: torch.device) -> list[dict]:
    dtype = settings.dtypes[0]
    net = random_unet(settings, dtype, device)
    rows = []
    for size in settings.sizes:
        inputs = unet_inputs(net, settings, size, dtype, device)
        with torch.inference_mode(), Meter(device).measure() as meter:
            out = net(**inputs)
        check_finite(out, f"the UNet at {size}²")
        rows.append({"what": f"UNet forward, CFG batch, {size}², {str(dtype).removeprefix('torch.')}",
                     "seconds": meter.seconds, "peak_gib": meter.peak_gib})
    return rows


def comfy_vae(ddconfig: dict, device: torch.device):
    """ComfyUI's KL-f8 autoencoder (what the pack decodes with), random weights, fp32."""
    from headless.server import find_comfyui

    comfy_dir = str(find_comfyui())
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = args.cpu or device.type == "cpu"  # ComfyUI otherwise looks for CUDA at import
    from comfy.ldm.models.autoencoder import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=ddconfig["z_channels"]).to(device).eval()
    with torch.no_grad():
        for param in vae.parameters():
            param.normal_(0.0, 0.02)
    return vae


def part_decode(settings: Settings, device: torch.device) -> list[dict]:
    vae = comfy_vae(settings.vae, device)
    rows = []
    for size in settings.sizes:
        latents = torch.randn(settings.frames * settings.views, 4, size // 8, size // 8, device=device)
        for decoding_t in settings.decoding_ts:
            with torch.inference_mode(), Meter(device).measure() as meter:
                images = sampling.decode_by_view(vae.decode, latents, settings.views, decoding_t)
            check_finite(images, f"decoding at {size}²")
            rows.append({"what": f"decode {settings.frames}×{settings.views} at {size}², decoding_t {decoding_t}",
                         "seconds": meter.seconds, "peak_gib": meter.peak_gib})
    return rows


def part_compile(settings: Settings, device: torch.device) -> list[dict]:
    dtype = settings.dtypes[0]
    net = random_unet(settings, dtype, device)
    inputs = unet_inputs(net, settings, settings.sizes[-1], dtype, device)
    compiled = torch.compile(net, backend=settings.compile_backend)
    rows = []
    for name, model in (("eager", net), (f"torch.compile ({settings.compile_backend})", compiled)):
        times = []
        for _ in range(3):  # first call: warm-up (compilation for the compiled model)
            with torch.inference_mode(), Meter(device).measure() as meter:
                out = model(**inputs)
            times.append(meter.seconds)
        check_finite(out, f"the {name} UNet")
        rows.append({"what": f"UNet forward {name}, {settings.sizes[-1]}², first call {times[0]:.1f} s",
                     "seconds": min(times[1:]), "peak_gib": meter.peak_gib})
    return rows


def load_dev_scene(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"the real dev scene is not at {path}; pass --scene (maidroid_256.safetensors from "
                                "shared/reference/real_scenes)")
    return load_file(path)


def part_fit(settings: Settings, device: torch.device, scene_path: Path) -> list[dict]:
    scene = load_dev_scene(scene_path)
    frames = slice(0, settings.fit_frames)
    videos, masks = scene["train_rgb"][:, frames].float() / 255, scene["train_mask"][:, frames].float() / 255
    cameras = OrbitCameras(*scene["train_cameras"].T.tolist())
    config = dataclasses.replace(settings.fit, device=str(device))
    with Meter(device).measure() as meter:
        field = fit_4d(videos, masks, cameras, config=config)
    size = config.resolution or videos.shape[2]
    heldout = OrbitCameras(*scene["heldout_cameras"].T.tolist())
    truth = torch.nn.functional.interpolate(scene["heldout_rgb"][:, frames].flatten(0, 1).permute(0, 3, 1, 2).float() / 255,
                                            size=(size, size), mode="area").permute(0, 2, 3, 1)
    with torch.no_grad():
        rgb, _ = render_videos(field, heldout, videos.shape[1], size, size)
    scores = video_metrics(rgb.flatten(0, 1).cpu(), truth)
    return [{"what": f"4D fit, dev scene at {size}², {config.iterations} iterations; held-out PSNR "
                     f"{scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f}",
             "seconds": meter.seconds, "peak_gib": meter.peak_gib}]


def part_hashgrid(settings: Settings, device: torch.device) -> list[dict]:
    points = torch.rand(settings.hash_points, 3, device=device)
    encodings: list[tuple[str, torch.nn.Module]] = [("torch hash grid", TorchHashGrid(3, {}).to(device))]
    if device.type == "cuda" and tcnn_available():
        import tinycudann as tcnn

        encodings.append(("tinycudann", tcnn.Encoding(3, DEFAULT_CONFIG, seed=1337)))
    rows = []
    for name, encoding in encodings:
        times = []
        for _ in range(4):  # first: warm-up
            with Meter(device).measure() as meter:
                encoding(points).float().square().mean().backward()
            times.append(meter.seconds)
        rows.append({"what": f"hash encoding fwd+bwd, {settings.hash_points} points, {name}",
                     "seconds": min(times[1:]), "peak_gib": meter.peak_gib})
    if len(encodings) == 1:
        rows.append({"what": "tinycudann: not importable here", "seconds": None, "peak_gib": None})
    return rows


def run_parts(settings: Settings, device: torch.device, scene: Path, parts: list[str]) -> tuple[list[dict], bool]:
    runners: dict[str, Callable[[], list[dict]]] = {
        "sample": lambda: part_sample(settings, device),
        "unet-memory": lambda: part_unet_memory(settings, device),
        "decode": lambda: part_decode(settings, device),
        "compile": lambda: part_compile(settings, device),
        "fit": lambda: part_fit(settings, device, scene),
        "hashgrid": lambda: part_hashgrid(settings, device),
    }
    rows, ok = [], True
    for part in parts:
        start = time.perf_counter()
        try:
            rows += [{"part": part, **row} for row in runners[part]()]
        except Exception as error:  # noqa: BLE001 - one failing part must not hide the others' figures
            traceback.print_exc()
            rows.append({"part": part, "what": f"FAILED: {type(error).__name__}: {error}"[:300], "seconds": None,
                         "peak_gib": None})
            ok = False
        print(f"{part}: {time.perf_counter() - start:.1f} s", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows, ok


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU ({os.cpu_count()} cores)"


def section(rows: list[dict], device: torch.device, total: float, tiny: bool) -> str:
    def fmt(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    lines = [
        SECTION_START,
        "## GPU acceptance run",
        "",
        f"Configuration: {'tiny CPU smoke configuration, not a GPU figure' if tiny else 'full size'}.",
        "",
        f"Written by `bench/gpu_acceptance.py` on {datetime.datetime.now().isoformat(timespec='minutes')}: "
        f"{device_name(device)}, torch {torch.__version__}; whole run {total:.0f} s. Random UNet/VAE weights; peak "
        "memory = `torch.cuda.max_memory_allocated` above what was allocated before the step.",
        "",
        "| part | what | seconds | s/step | peak memory (GiB) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['part']} | {row['what']} | {fmt(row['seconds'], '.2f')} | "
                     f"{fmt(row.get('per_step'), '.3f')} | {fmt(row['peak_gib'], '.2f')} |")
    lines.append(SECTION_END)
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace the marked GPU section of `path` (append it when absent); atomic."""
    old = path.read_text() if path.exists() else ""
    if SECTION_START in old and SECTION_END in old:
        head, rest = old.split(SECTION_START, 1)
        new = head + text + rest.split(SECTION_END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)


PARTS = ("sample", "unet-memory", "decode", "compile", "fit", "hashgrid")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny CPU configuration (smoke test, not a figure)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ", ".join(PARTS))
    parser.add_argument("--scene", type=Path, default=DEV_SCENE, help="maidroid_256.safetensors (real dev scene)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := [p for p in parts if p not in PARTS]:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.tiny:
        settings, device = TINY, torch.device("cpu")
    elif torch.cuda.is_available():
        settings, device = FULL, torch.device("cuda")
    else:
        parser.error("no CUDA device: the acceptance figures need a GPU (use --tiny for the CPU smoke run)")
    start = time.perf_counter()
    rows, ok = run_parts(settings, device, args.scene, parts)
    write_section(args.out, section(rows, device, time.perf_counter() - start, args.tiny))
    print(f"wrote {args.out}" + ("" if ok else " (some parts FAILED)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
