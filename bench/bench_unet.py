"""SV4D2UNet forward: our CPU fast paths vs the unoptimised reference computation, side by side in one run;
full-size FLOPs and activation memory traced on `meta`. Writes docs/bench_unet.md.

Usage: `python bench/bench_unet.py [--cases mc64,mc128,full-4v,full-8v] [--repeats 3] [--official-source DIR]`
(about 5 minutes of CPU time, 8 with the official code; wall time grows with the load of a shared machine).
`full-4v`/`full-8v` are traced on `meta` in seconds.

Modes, all on the same weights and inputs (reference and ours on one network instance):
* `ours`: the library as shipped (single-token cross-attention as `to_out(to_v(ctx))`, and on fp32 CPU the fused
  oneDNN feed-forward, fused QKV projection, fused residual adds, in-place activations, 2-D temporal convolutions:
  `sv4d_lib.model.fused_cpu`);
* `reference`: what the official code computes, unoptimised: CPU fast paths off, every query sequence gets its own
  copy of its context token and the cross-attention runs as real softmax attention (`to_q`, `to_k`, scores,
  softmax), GroupNorm32 upcasts whole tensors (no effect in fp32). Feed-forward chunking never engages at the CPU
  sizes (fewer than 2^16 tokens per layer); the meta trace runs the reference unchunked;
* `official` (only with `--official-source`): Stability's own `SpatialUNetModelWithTime`, imported from a checkout
  of github.com/Stability-AI/generative-models (the spec's commit 0ad7de9; not installable from a registry), built
  from the `sv4d2.yaml` network_config with the case's sizes and loaded with the same state dict. Its attention type
  is "softmax" (torch SDPA): the yaml's "softmax-xformers" needs xformers, which has no CPU kernels.

Timing (CPU): one torch thread; the modes alternate, `--repeats` times each, and the table reports the
medians of process CPU time (less disturbed than wall time by other jobs on shared cores) and of wall time.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sv4d_lib.model import SV4D2UNet, attention, blocks  # noqa: E402
from sv4d_lib.model.attention import MAX_ATTENTION_BATCH, SingleTokenContextBlock  # noqa: E402

# name: (network overrides, B, T, V, latent side, device); production context (1024) and head size (64), fewer
# channels. mc64 at 24² latents is the configuration of issue #15; mc128 runs at 16² to keep the run short.
CASES: dict[str, tuple[dict, int, int, int, int, str]] = {
    "mc64": (dict(model_channels=64, adm_in_channels=256), 2, 12, 4, 24, "cpu"),
    "mc128": (dict(model_channels=128, adm_in_channels=512), 2, 12, 4, 16, "cpu"),
    "full-4v": (dict(), 2, 12, 4, 72, "meta"),
    "full-8v": (dict(use_3d_attention=False), 2, 5, 8, 72, "meta"),
}
MODES = ("reference", "ours")
# `sv4d2.yaml` network_config at 0ad7de9 (spec §2.1), attention "softmax" instead of "softmax-xformers" (see above).
OFFICIAL_NETWORK_CONFIG = dict(
    adm_in_channels=1280, attention_resolutions=[4, 2, 1], channel_mult=[1, 2, 4, 4], context_dim=1024,
    motion_context_dim=4, extra_ff_mix_layer=True, in_channels=8, legacy=False, model_channels=320,
    num_classes="sequential", num_head_channels=64, num_res_blocks=2, out_channels=4, replicate_time_mix_bug=True,
    spatial_transformer_attn_type="softmax", time_block_merge_factor=0.0,
    time_block_merge_strategy="learned_with_images", time_kernel_size=[3, 1, 1], time_mix_legacy=False,
    transformer_depth=1, use_checkpoint=False, use_linear_in_transformer=True, use_spatial_context=True,
    use_spatial_transformer=True, separate_motion_merge_factor=True, use_motion_attention=True,
    use_3d_attention=True, use_camera_emb=True,
)


def baseline_cross_attention(self: SingleTokenContextBlock, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Official computation of `x + attn2(norm2(x), context)`: context repeated per sequence, real attention."""
    per_context = context.repeat_interleave(x.shape[0] // context.shape[0], dim=0)[:, None]
    q = self.attn2.to_q(self.norm2(x))
    k, v = self.attn2.to_k(per_context), self.attn2.to_v(per_context)
    step = MAX_ATTENTION_BATCH  # the official xformers path splits its batch the same way (CUDA grid limit)
    heads = self.attn1.heads
    out = [attention(q[s : s + step], k[s : s + step], v[s : s + step], heads) for s in range(0, len(q), step)]
    return x + self.attn2.to_out(torch.cat(out))


@contextlib.contextmanager
def mode(net: SV4D2UNet, name: str) -> Iterator[None]:
    """Run `net` as `name`: the reference switches the CPU fast paths off and patches in the official
    cross-attention and whole-tensor GroupNorm32 upcasting; everything is restored on exit."""
    original = SingleTokenContextBlock.cross_attention, blocks.GROUP_NORM_CHUNK_ELEMENTS
    if name == "reference":
        SingleTokenContextBlock.cross_attention = baseline_cross_attention
        blocks.GROUP_NORM_CHUNK_ELEMENTS = 2**62
    net.set_cpu_fast_paths(name == "ours")
    try:
        yield
    finally:
        SingleTokenContextBlock.cross_attention, blocks.GROUP_NORM_CHUNK_ELEMENTS = original
        net.set_cpu_fast_paths(True)


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of live tensor storages created inside the context (CPU has no allocator statistics).

    Tensors made before entering (weights, inputs) are not counted, nor kernel-internal scratch buffers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: set[int] = set()
        self.current = self.peak = 0

    def _release(self, key: int, nbytes: int) -> None:
        self.live.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage._cdata  # the StorageImpl address: unique while alive, also on `meta`
                if key not in self.live and key not in inputs:  # views alias their input, e.g. weight.t()
                    self.live.add(key)
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


def fused_attention_stub(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, **_) -> torch.Tensor:
    """Memory model of a fused (flash) attention kernel for meta traces: it allocates only its output.
    (On `meta`, SDPA decomposes into the math path, whose L×L score matrices a GPU never materialises.)"""
    return torch.empty_like(q)


def build(case: str, dtype: torch.dtype = torch.float32, **options) -> tuple[SV4D2UNet, dict, dict]:
    """Random-weight network N(0, 0.02) and random inputs of `case`, on the case's device."""
    overrides, batch, frames, views, size, device = CASES[case]
    torch.manual_seed(0)
    net = SV4D2UNet(**overrides, **options, device="meta", dtype=dtype)
    if device != "meta":
        net = net.to_empty(device=device)
        with torch.no_grad():
            for param in net.parameters():
                param.normal_(0.0, 0.02)
    g = torch.Generator().manual_seed(1)
    n = batch * frames * views

    def randn(*shape: int) -> torch.Tensor:
        if device == "meta":
            return torch.empty(*shape, device=device, dtype=dtype)
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    inputs = dict(
        x=randn(n, 8, size, size), timesteps=torch.full((n,), 0.25, device=device),
        context=randn(batch, frames, net.context_dim), y=randn(n, net.adm_in_channels),
        cond_view=randn(batch * views, 4, size, size),
    )
    return net.eval(), inputs, dict(num_frames=frames, num_views=views)


def official_unet_class(source: Path) -> type[torch.nn.Module]:
    """`SpatialUNetModelWithTime` from a generative-models checkout at `source`.

    `sgm/__init__.py` and `sgm/modules/__init__.py` import the training and conditioning stack (Lightning, open_clip,
    …), none of which the network needs, so the packages are registered as bare namespaces over their folders.
    """
    if not (source / "sgm" / "modules" / "diffusionmodules" / "video_model.py").is_file():
        raise SystemExit(
            f"--official-source {source}: no sgm/modules/diffusionmodules/video_model.py there; pass the root of a "
            "checkout of github.com/Stability-AI/generative-models (commit 0ad7de9)"
        )
    for name in ("sgm", "sgm.modules", "sgm.modules.diffusionmodules"):
        package = types.ModuleType(name)
        package.__path__ = [str(source.joinpath(*name.split(".")))]
        sys.modules[name] = package
    from sgm.modules.diffusionmodules.video_model import SpatialUNetModelWithTime

    return SpatialUNetModelWithTime


def official_twin(net: SV4D2UNet, case: str, source: Path) -> Callable[[dict, dict], torch.Tensor]:
    """The official network of `case`'s sizes holding `net`'s weights (strict load: same keys and shapes), called
    the way the official sampler's `OpenAIWrapper` calls it (spec §5)."""
    overrides = CASES[case][0]
    official = official_unet_class(source)(**{**OFFICIAL_NETWORK_CONFIG, **overrides})
    official.load_state_dict(net.state_dict(), strict=True)
    official.eval()

    def run(inputs: dict, counts: dict) -> torch.Tensor:
        frames, views = counts["num_frames"], counts["num_views"]
        batch = inputs["x"].shape[0] // (frames * views)
        return official(
            inputs["x"], timesteps=inputs["timesteps"], context=inputs["context"], y=inputs["y"],
            cond_view=inputs["cond_view"], cond_motion=inputs["x"].new_zeros(batch * frames, 4, *inputs["x"].shape[2:]),
            num_video_frames=frames * views, image_only_indicator=inputs["x"].new_zeros(batch, frames * views),
        )

    return run


@torch.no_grad()
def side_by_side(case: str, repeats: int, official_source: Path | None) -> dict:
    """Reference, ours (and the official network) alternating on one set of weights and inputs; medians of CPU and
    wall time, max |Δ| of each output against the reference."""
    net, inputs, counts = build(case)
    runners: dict[str, Callable[[], torch.Tensor]] = {name: lambda: net(**inputs, **counts) for name in MODES}
    if official_source is not None:
        run_official = official_twin(net, case, official_source)
        runners["official"] = lambda: run_official(inputs, counts)
    cpu: dict[str, list[float]] = {m: [] for m in runners}
    wall: dict[str, list[float]] = {m: [] for m in runners}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, run in runners.items():
            with mode(net, name) if name in MODES else contextlib.nullcontext():
                start, cpu_start = time.perf_counter(), time.process_time()
                outputs[name] = run()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
            print(f"{case} {name}: {cpu[name][-1]:.2f} s CPU, {wall[name][-1]:.2f} s wall", flush=True)
    for name, out in outputs.items():
        if not torch.isfinite(out).all():
            raise RuntimeError(f"{case}: the {name} forward produced non-finite values")
    median = {m: (statistics.median(cpu[m]), statistics.median(wall[m])) for m in runners}
    return dict(
        case=case, shape=tuple(inputs["x"].shape), params_m=sum(p.numel() for p in net.parameters()) / 1e6,
        median=median, samples=cpu, speedup={m: median[m][0] / median["ours"][0] for m in runners if m != "ours"},
        max_abs_diff={m: (out - outputs["reference"]).abs().max().item() for m, out in outputs.items() if m != "reference"},
        max_abs_out=outputs["reference"].abs().max().item(),
    )


@torch.no_grad()
def trace(case: str, name: str, dtype: torch.dtype = torch.float16) -> dict:
    """FLOPs and peak activation memory of one full-size forward, on `meta` tensors (shapes only)."""
    unchunked = {"chunk_tokens": 2**62} if name == "reference" else {}
    net, inputs, counts = build(case, dtype, **unchunked)
    with mode(net, name), FlopCounterMode(display=False) as flops:
        net(**inputs, **counts)
    net, inputs, counts = build(case, dtype, attention_fn=fused_attention_stub, **unchunked)
    with mode(net, name), PeakTensorMemory() as tracker:
        net(**inputs, **counts)
    return dict(case=case, mode=name, dtype=str(dtype).removeprefix("torch."), shape=tuple(inputs["x"].shape),
                tflops=flops.get_total_flops() / 1e12, peak_gib=tracker.peak / 2**30)


def trace_table(rows: list[dict]) -> list[str]:
    lines = [
        "| case | dtype | x shape | mode | TFLOP per forward | peak activation memory (GiB) | FLOPs vs ours "
        "| memory vs ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ours = {r["case"]: r for r in rows if r["mode"] == "ours"}
    for r in rows:
        ref = ours[r["case"]]
        ratios = ("1", "1") if r is ref else (
            f"{r['tflops'] / ref['tflops']:.3f}x", f"{r['peak_gib'] / ref['peak_gib']:.2f}x"
        )
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['shape']} | {r['mode']} | {r['tflops']:.1f} | {r['peak_gib']:.2f} | "
            + " | ".join(ratios) + " |"
        )
    return lines


def speed_table(rows: list[dict]) -> list[str]:
    """One row per case and mode: medians, the speed-up of ours over that mode, max |Δ| against the reference."""
    lines = [
        "| case | x shape | params (M) | mode | CPU s (median) | wall s (median) | **ours is faster by (CPU time)** "
        "| max abs diff to reference | CPU s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for m, (cpu, wall) in r["median"].items():
            speedup = "1" if m == "ours" else f"**{r['speedup'][m]:.2f}x**"
            diff = f"0 (max abs output {r['max_abs_out']:.2f})" if m == "reference" else f"{r['max_abs_diff'][m]:.1e}"
            runs = ", ".join(f"{t:.1f}" for t in r["samples"][m])
            lines.append(
                f"| {r['case']} | {r['shape']} | {r['params_m']:.1f} | {m} | {cpu:.2f} | {wall:.2f} | {speedup} | "
                f"{diff} | {runs} |"
            )
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{platform.system()} {cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    # One thread: on a shared machine, idle OpenMP workers spin and inflate CPU time unpredictably.
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per mode (alternating)")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench_unet.md"))
    parser.add_argument(
        "--official-source", type=Path, default=None,
        help="root of a Stability-AI/generative-models checkout (commit 0ad7de9): also time the official network",
    )
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    load_before = load_average()
    traced = [trace(case, name) for case in cases if CASES[case][5] == "meta" for name in MODES]
    rows = [side_by_side(case, args.repeats, args.official_source) for case in cases if CASES[case][5] == "cpu"]
    load_after = load_average()
    lines = [
        "# SV4D2UNet forward benchmark",
        "",
        f"Generated by `bench/bench_unet.py` on {datetime.datetime.now().isoformat(timespec='minutes')}: "
        f"{machine()}, {torch.get_num_threads()} torch thread; load average (1 / 5 / 15 min) {load_before} at the "
        f"start, {load_after} at the end (other jobs share the cores).",
        "",
        "## CPU: ours vs the official code and the unoptimised reference, side by side",
        "",
        "One set of random weights N(0, 0.02) per case, B = 2 (the CFG batch), T = 12 frames × V = 4 views, fp32",
        "(latent side in the x shape). `reference` = the official computation without our optimisations (real",
        "single-token cross-attention, unfused feed-forward and projections, Conv3d); `ours` = the library as shipped",
        "(`sv4d_lib.model.fused_cpu`); `official` = Stability's `SpatialUNetModelWithTime` itself, run from a",
        "generative-models checkout at 0ad7de9 with the same state dict "
        + ("(`--official-source`)." if args.official_source else "(not run: no `--official-source` given)."),
        f"The modes alternate, {args.repeats} forwards each; medians. Speed-up = that mode's CPU time / ours (process",
        "CPU time, one thread, page-fault time included: what other jobs on the cores disturb least).",
        "",
        *speed_table(rows),
        "",
        "## Full size, traced on the meta device",
        "",
        "The production forward (B = 2, 72² latents, fp16) run on `meta` tensors: no data, exact shapes. FLOPs from",
        "`torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention); peak activation memory =",
        "peak bytes of live tensors created by the forward, with attention modelled as a fused kernel that",
        "allocates only its output (weights, 4.0 GB in fp16, excluded). The reference also runs unchunked.",
        "",
        *trace_table(traced),
        "",
        "## Where the differences come from",
        "",
        "* Fused feed-forward (the largest share of the CPU time): `Linear → GEGLU → Linear` + residual becomes three",
        "  oneDNN calls (`torch.ops.mkldnn._linear_pointwise`): the gate projection with GELU (erf) applied in the",
        "  matmul's output loop, the value projection multiplied by it in the same way, the output projection with",
        "  the residual add. The unfused layers run GELU and the product on strided halves of the 8·C-wide",
        "  projection and allocate three more 4·C-wide tensors per call.",
        "* Bounded temporaries: the fused feed-forward and self-attention run in row chunks whose widest temporary",
        "  stays under 8 MiB (`fused_cpu.TEMPORARY_BYTES`). A whole-layer 4·C-wide hidden state (50 MB at C = 128)",
        "  is above glibc's mmap threshold, so every call got fresh pages that the kernel faults in and zeroes:",
        "  2 s of the 19 s mc128 forward was system time; chunked, the blocks are reused and it is ~0.1 s. Each",
        "  chunk's sum is written over the rows of the residual it has just read (no new output, no copy).",
        "* Self-attention: one QKV projection through oneDNN (the three weights concatenated at each call; never",
        "  cached, so patched weights are honoured), `to_out` with the residual add fused; the single-token",
        "  cross-attention adds in place.",
        "* ResBlocks: SiLU and the emb/skip sums in place; the temporal Conv3d (kernel 3×1×1, which torch's CPU",
        "  backend runs with a slow unfolding kernel) as the equivalent 2-D convolution over (T·V, h·w); the",
        "  α-blend written straight into the (b·t) layout instead of blend-then-copy.",
        "* Single-token cross-attention `to_out(to_v(ctx))`: no `norm2`/`to_q` over every token, no `to_k`/`to_v`",
        "  over a per-sequence copy of the context, no scores or softmax (softmax over one key is exactly 1). This",
        "  is the whole FLOP difference of the trace; it applies on every device.",
        "* Memory (trace): feed-forward layers run in chunks of 2^16 tokens, GroupNorm32 upcasts a few samples at a",
        "  time, temporaries are freed right after the layer that reads them.",
        "* The fused CPU kernels apply to fp32 CPU inference with plain weights only (not under autograd, not for",
        "  ComfyUI layers that cast or patch weights at call time); everything else runs the reference layers.",
        "  GPU figures: `bench/gpu_acceptance.py` (docs/benchmarks.md).",
        "",
    ]
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
