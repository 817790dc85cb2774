"""SV4D2UNet forward time and peak memory, optimised vs an official-style baseline; writes docs/bench_unet.md.

Usage: `python bench/bench_unet.py [--cases tiny,mid,full-4v,full-8v]`. Three parts:
1. CPU cases (tiny, mid): measured time and peak tensor memory;
2. full-size cases traced on the `meta` device (no compute, seconds, runs anywhere): FLOPs and peak activation
   memory of the production forward, fp16;
3. full-size cases measured on CUDA, fp16 and bf16, when a GPU is available.
Parts 1 and 2 take about 1.5 minutes on an idle 2-core machine.

Modes:
* `optimised`: the library as shipped (single-token cross-attention as `to_out(to_v(ctx))`, token chunking);
* `baseline`: what the official code computes: every query sequence gets its own copy of its context token and
  the cross-attention runs as real softmax attention (`to_q`, `to_k`, scores, softmax); feed-forward layers are
  unchunked, GroupNorm32 upcasts whole tensors to float32, and attention batches are split only at 2^15
  sequences, like the official xformers path.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sv4d_lib.model import SV4D2UNet, attention, blocks  # noqa: E402
from sv4d_lib.model.attention import MAX_ATTENTION_BATCH, SingleTokenContextBlock  # noqa: E402

# name: (network overrides, B, T, V, latent size, device)
CASES: dict[str, tuple[dict, int, int, int, int, str]] = {
    # the golden tiny config (spec §9.4)
    "tiny": (dict(model_channels=32, adm_in_channels=128, context_dim=64, num_head_channels=16), 2, 12, 4, 16, "cpu"),
    # production context and head sizes, a fifth of the channels
    "mid": (dict(model_channels=64, adm_in_channels=256, num_head_channels=64), 2, 12, 4, 16, "cpu"),
    "full-4v": (dict(), 2, 12, 4, 72, "cuda"),
    "full-8v": (dict(use_3d_attention=False), 2, 5, 8, 72, "cuda"),
}
MODES = ("optimised", "baseline")


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
def mode_patch(mode: str) -> Iterator[None]:
    """Baseline: official cross-attention, and GroupNorm32 upcasting whole tensors (no per-sample chunks)."""
    original = SingleTokenContextBlock.cross_attention, blocks.GROUP_NORM_CHUNK_ELEMENTS
    if mode == "baseline":
        SingleTokenContextBlock.cross_attention = baseline_cross_attention
        blocks.GROUP_NORM_CHUNK_ELEMENTS = 2**62
    try:
        yield
    finally:
        SingleTokenContextBlock.cross_attention, blocks.GROUP_NORM_CHUNK_ELEMENTS = original


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


def build(
    case: str, mode: str, dtype: torch.dtype, device: str | None = None, **options
) -> tuple[SV4D2UNet, dict, dict]:
    overrides, batch, frames, views, size, case_device = CASES[case]
    device = device or case_device
    chunking = {"chunk_tokens": 2**62} if mode == "baseline" else {}
    torch.manual_seed(0)
    net = SV4D2UNet(**overrides, **chunking, **options, device="meta", dtype=dtype)
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


@torch.no_grad()
def measure(case: str, mode: str, dtype: torch.dtype) -> dict:
    net, inputs, counts = build(case, mode, dtype)
    device = CASES[case][5]
    with mode_patch(mode):
        if device == "cuda":  # warm-up, then best of 3; peak over the timed runs, above weights and inputs
            net(**inputs, **counts)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                out = net(**inputs, **counts)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            wall, cpu, peak = min(times), None, torch.cuda.max_memory_allocated() - base
        else:  # best of 2 timed runs, then one run under the tensor-memory tracker
            walls, cpus = [], []
            for _ in range(2):
                start, cpu_start = time.perf_counter(), time.process_time()
                out = net(**inputs, **counts)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu_start)
            wall, cpu = min(walls), min(cpus)
            with PeakTensorMemory() as tracker:
                net(**inputs, **counts)
            peak = tracker.peak
    return dict(
        case=case, mode=mode, device=device, dtype=str(dtype).removeprefix("torch."), wall=wall, cpu=cpu,
        peak_mib=peak / 2**20, params_m=sum(p.numel() for p in net.parameters()) / 1e6,
        shape=tuple(inputs["x"].shape), output=out.float().cpu(),
    )


@torch.no_grad()
def trace(case: str, mode: str, dtype: torch.dtype = torch.float16) -> dict:
    """FLOPs and peak activation memory of one forward, on `meta` tensors (shapes only)."""
    with mode_patch(mode):
        net, inputs, counts = build(case, mode, dtype, device="meta")
        with FlopCounterMode(display=False) as flops:
            net(**inputs, **counts)
        net, inputs, counts = build(case, mode, dtype, device="meta", attention_fn=fused_attention_stub)
        with PeakTensorMemory() as tracker:
            net(**inputs, **counts)
    return dict(case=case, mode=mode, dtype=str(dtype).removeprefix("torch."), shape=tuple(inputs["x"].shape),
                tflops=flops.get_total_flops() / 1e12, peak_gib=tracker.peak / 2**30)


def trace_table(rows: list[dict]) -> list[str]:
    lines = [
        "| case | dtype | x shape | mode | TFLOP per forward | peak activation memory (GiB) | FLOPs vs optimised "
        "| memory vs optimised |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference = {r["case"]: r for r in rows if r["mode"] == "optimised"}
    for r in rows:
        ref = reference[r["case"]]
        ratios = ("1 (ref)", "1 (ref)") if r is ref else (
            f"{r['tflops'] / ref['tflops']:.3f}x", f"{r['peak_gib'] / ref['peak_gib']:.2f}x"
        )
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['shape']} | {r['mode']} | {r['tflops']:.1f} | {r['peak_gib']:.2f} | "
            + " | ".join(ratios) + " |"
        )
    return lines


def machine() -> str:
    gpu = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no CUDA device"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| case | device | dtype | x shape | params (M) | mode | wall (s) | CPU time (s) | peak memory (MiB) "
        "| time vs optimised | memory vs optimised | max abs diff vs optimised |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    reference = {(r["case"], r["dtype"]): r for r in rows if r["mode"] == "optimised"}
    for r in rows:
        ref = reference[(r["case"], r["dtype"])]
        timing = "cpu" if r["device"] == "cpu" else "wall"  # CPU time is less disturbed by other jobs
        ratios = ("1 (ref)", "1 (ref)", "")
        if r is not ref:
            ratios = (
                f"{r[timing] / ref[timing]:.2f}x", f"{r['peak_mib'] / ref['peak_mib']:.2f}x",
                f"{(r['output'] - ref['output']).abs().max().item():.1e}",
            )
        cpu = "" if r["cpu"] is None else f"{r['cpu']:.2f}"
        lines.append(
            f"| {r['case']} | {r['device']} | {r['dtype']} | {r['shape']} | {r['params_m']:.1f} | {r['mode']} | "
            f"{r['wall']:.2f} | {cpu} | {r['peak_mib']:.0f} | " + " | ".join(ratios) + " |"
        )
    return lines


def main() -> None:
    # One thread: on a shared machine, idle OpenMP workers spin and inflate CPU time unpredictably.
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--out", default=str(REPO / "docs" / "bench_unet.md"))
    args = parser.parse_args()
    cases = args.cases.split(",")
    skipped = [c for c in cases if CASES[c][5] == "cuda" and not torch.cuda.is_available()]
    traced = [trace(case, mode) for case in cases if CASES[case][5] == "cuda" for mode in MODES]
    for row in traced:
        print(row, flush=True)
    rows = []
    for case in (c for c in cases if c not in skipped):
        dtypes = (torch.float32,) if CASES[case][5] == "cpu" else (torch.float16, torch.bfloat16)
        for dtype in dtypes:
            for mode in MODES:
                rows.append(measure(case, mode, dtype))
                print({k: v for k, v in rows[-1].items() if k != "output"}, flush=True)
    lines = [
        "# SV4D2UNet forward benchmark",
        "",
        f"Generated by `bench/bench_unet.py` on {datetime.date.today().isoformat()}: {machine()}.",
        "",
        "Random weights N(0, 0.02); inputs in the UNet's (b, t, v) layout; B = 2 (the CFG batch).",
        "`optimised` is the library; `baseline` is the official computation (cross-attention as real attention on a",
        "per-sequence copy of its context token, no feed-forward chunking, GroupNorm32 upcasting whole tensors).",
        "",
        "* CPU: one torch thread, best of 2 forwards; the time ratio uses process CPU time, which other jobs sharing",
        "  the cores disturb less than wall time. Peak memory = peak bytes of live tensors created by the forward (a",
        "  third run under a dispatch-mode tracker; weights, inputs and kernel scratch excluded).",
        "* CUDA: best of 3 forwards after a warm-up; peak memory = `max_memory_allocated` minus the weights and",
        "  inputs.",
        "",
        *table(rows),
        "",
        "## Full size, traced on the meta device",
        "",
        "The production forward (B = 2, 72² latents, fp16) run on `meta` tensors: no data, exact shapes. FLOPs from",
        "`torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention); peak activation memory =",
        "peak bytes of live tensors created by the forward, with attention modelled as a fused kernel that",
        "allocates only its output (weights, 4.0 GB in fp16, excluded).",
        "",
        *trace_table(traced),
        "",
        "## Where the differences come from",
        "",
        "* Single-token cross-attention (`to_out(to_v(ctx))`): no `norm2`/`to_q` over every token, no `to_k`/`to_v`",
        "  over a per-sequence copy of the context (the 4-view 3-D attention pairs each of its ~10^5 sequences per",
        "  block with its own copy of a 1024-d CLIP token), no scores or softmax. This is the FLOP difference.",
        "* Memory: feed-forward layers run in chunks of 2^16 tokens, GroupNorm32 upcasts a few samples at a time",
        "  instead of the whole tensor (the widest decoder input is 96×960×72² at full size), and the UNet frees",
        "  temporaries (e.g. each concatenated skip input) right after the layer that reads them. The baseline keeps",
        "  that early freeing, so the official code's peak is higher still.",
        "* At the CPU cases' 16² latents no layer reaches 2^16 tokens, so chunking never engages and the shortcut",
        "  saves a few percent of the work: CPU time and memory differ by less than the noise of a shared machine.",
        "  Outputs agree (last column): softmax over one key is exactly 1.",
        "",
    ]
    if skipped:
        lines += [f"Not run (no CUDA device here): {', '.join(skipped)} (full size, fp16 and bf16, 72² latents).", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
