"""Attention blocks of the SV4D 2.0 UNet (spec §2.5).

Every attention stage of the UNet is one `SpatialViewFrameTransformer` (official
`PostHocSpatialTransformerWithTimeMixingAndMotion`, "ST+M"). It runs three mixings in a row:

1. **spatial**: self-attention over the pixels of each image, plus the CLIP token of its input frame;
2. **view** ("camera"): attention across the V views — or, in the 4-view model's **"3D attention"**
   (`use_3d_attention=True`), the official scrambled variant, see `to_3d_attention_sequences`;
3. **frame** ("motion"): attention across the T frames of each view and pixel.

Cross-attention shortcut: every cross-attention here has exactly **one** key/value token, so softmax is 1 and the
output is `to_out(to_v(context))` for every query. `SingleTokenCrossAttention` computes only that (the `to_q`/`to_k`
weights load but are mathematically unused) and the blocks broadcast it over the queries that share the token.

Memory: the view and frame stages attend over ~10^5 short sequences per call at full size. Attention and
feed-forward layers therefore run in chunks of at most `chunk_tokens` tokens (and `MAX_ATTENTION_BATCH` sequences,
a CUDA kernel grid limit), written into one output tensor, so peak memory no longer scales with the batch.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import fused_cpu
from .blocks import AlphaBlender, Device
from .embeddings import Operations, embedding_mlp, timestep_embedding

# Tokens per chunk of the attention and feed-forward layers (`None` on a module disables chunking).
DEFAULT_CHUNK_TOKENS = 2**16
# Sequences per attention call: fused CUDA attention kernels put the batch on a grid axis limited to 65535.
MAX_ATTENTION_BATCH = 2**15

AttentionFn = Callable[..., torch.Tensor]


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, transformer_options: dict | None = None
) -> torch.Tensor:
    """Multi-head softmax attention on `(B, L, heads·dim_head)` tensors, scale dim_head^-0.5.

    Same signature as ComfyUI's `comfy.ldm.modules.attention.optimized_attention`, which can replace it through the
    UNet's `attention_fn` argument; `transformer_options` is only meaningful to that replacement.
    """
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)


def _chunked(
    fn: Callable[[int, int], torch.Tensor], total: int, chunk: int | None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """`fn(start, end)` over consecutive slices of `total` rows, written into one output (peak = output + 1 chunk).

    `out`: the output to write into (default: a new tensor). It may be an input of `fn` whose rows `start:end` only
    the call for those rows reads, such as the residual of `add_to`: each call has read its rows before they are
    overwritten. A single chunk is returned as `fn` made it, without a copy.
    """
    if chunk is None or total <= chunk:
        return fn(0, total)
    for start in range(0, total, chunk):
        part = fn(start, min(start + chunk, total))
        if out is None:
            out = part.new_empty((total, *part.shape[1:]))
        out[start : start + part.shape[0]] = part
    assert out is not None
    return out


class SelfAttention(nn.Module):
    """Official `CrossAttention` used as self-attention (keys `to_q`, `to_k`, `to_v`, `to_out.0`).

    `add_to` is the residual form used by the blocks; with `cpu_fast_paths` on fp32 CPU it runs one QKV projection
    (the three weights concatenated at each call) and fuses the residual add into `to_out` (see `fused_cpu`).
    """

    cpu_fast_paths = True

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        operations: Operations,
        attention_fn: AttentionFn = attention,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.attention_fn = attention_fn
        self.chunk_tokens = chunk_tokens
        self.to_q = operations.Linear(dim, inner, bias=False, device=device, dtype=dtype)
        self.to_k = operations.Linear(dim, inner, bias=False, device=device, dtype=dtype)
        self.to_v = operations.Linear(dim, inner, bias=False, device=device, dtype=dtype)
        self.to_out = nn.Sequential(operations.Linear(inner, dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor, transformer_options: dict | None = None) -> torch.Tensor:
        """x `(S, L, dim)`: S independent sequences of length L."""

        def run(start: int, end: int) -> torch.Tensor:
            part = x[start:end]
            out = self.attention_fn(
                self.to_q(part), self.to_k(part), self.to_v(part), self.heads, transformer_options=transformer_options
            )
            return self.to_out(out)

        return _chunked(run, x.shape[0], self._sequences_per_call(x))

    def _sequences_per_call(self, x: torch.Tensor) -> int | None:
        if self.chunk_tokens is None:
            return None
        return max(1, min(MAX_ATTENTION_BATCH, self.chunk_tokens // x.shape[1]))

    def add_to(self, residual: torch.Tensor, x: torch.Tensor, transformer_options: dict | None = None) -> torch.Tensor:
        """`residual + self(x)`, residual and x `(S, L, dim)`. The residual is consumed: the fused path may write the
        sum into it (the blocks pass the fresh output of their previous layer)."""
        out_layer = self.to_out[0]
        if not (self.cpu_fast_paths and fused_cpu.applies(x, self.to_q, self.to_k, self.to_v, out_layer)):
            return residual + self(x, transformer_options)
        qkv_weight = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])

        def run(start: int, end: int) -> torch.Tensor:
            q, k, v = fused_cpu.linear(x[start:end], qkv_weight).chunk(3, dim=-1)
            out = self.attention_fn(q, k, v, self.heads, transformer_options=transformer_options)
            return fused_cpu.linear_add(out, out_layer, residual[start:end])

        sequences = max(1, fused_cpu.rows_per_call(len(qkv_weight)) // x.shape[1])
        return _chunked(run, x.shape[0], min(sequences, self._sequences_per_call(x) or sequences), out=residual)


class SingleTokenCrossAttention(nn.Module):
    """Official `CrossAttention` with a single context token: output = `to_out(to_v(context))` for every query.

    Softmax over one key is exactly 1, so queries and keys cannot change the result; `to_q`/`to_k` exist only so
    the checkpoint loads strictly. Returns one row per context token, `(G, dim)`; callers broadcast it.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        heads: int,
        dim_head: int,
        operations: Operations,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.to_q = operations.Linear(dim, inner, bias=False, device=device, dtype=dtype)
        self.to_k = operations.Linear(context_dim, inner, bias=False, device=device, dtype=dtype)
        self.to_v = operations.Linear(context_dim, inner, bias=False, device=device, dtype=dtype)
        self.to_out = nn.Sequential(operations.Linear(inner, dim, device=device, dtype=dtype))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context `(G, context_dim)` → `(G, dim)`."""
        return self.to_out(self.to_v(context))


class GEGLU(nn.Module):
    """`a · gelu(gate)` with `[a | gate] = proj(x)` (exact erf GELU; key `proj`)."""

    def __init__(self, dim: int, inner: int, operations: Operations, device: Device = None, dtype=None) -> None:
        super().__init__()
        self.proj = operations.Linear(dim, inner * 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """Official gated `FeedForward(dim, mult=4, glu=True)` (keys `net.0.proj`, `net.2`), run in token chunks.

    `add_to` is the residual form used by the blocks; with `cpu_fast_paths` on fp32 CPU it runs as three fused
    oneDNN calls (`fused_cpu.geglu_feed_forward_add`).
    """

    cpu_fast_paths = True

    def __init__(
        self,
        dim: int,
        operations: Operations,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.chunk_tokens = chunk_tokens
        self.net = nn.Sequential(
            GEGLU(dim, 4 * dim, operations, device=device, dtype=dtype),
            nn.Identity(),  # official Dropout(0) slot, keeps the output layer at key `net.2`
            operations.Linear(4 * dim, dim, device=device, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])
        return _chunked(lambda s, e: self.net(tokens[s:e]), tokens.shape[0], self.chunk_tokens).reshape(x.shape)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`residual + self(x)` for x and residual of the same shape `(..., dim)`. The residual is consumed: the
        fused path may write the sum into it."""
        proj, out = self.net[0].proj, self.net[2]
        if not (self.cpu_fast_paths and fused_cpu.applies(x, proj, out)):
            return residual + self(x)
        tokens, residual_tokens = x.reshape(-1, x.shape[-1]), residual.reshape(-1, x.shape[-1])

        def run(start: int, end: int) -> torch.Tensor:
            return fused_cpu.geglu_feed_forward_add(tokens[start:end], proj, out, residual_tokens[start:end])

        rows = fused_cpu.rows_per_call(out.in_features)
        chunk = min(rows, self.chunk_tokens or rows)
        return _chunked(run, tokens.shape[0], chunk, out=residual_tokens).reshape(residual.shape)


class SingleTokenContextBlock(nn.Module):
    """Base of the two transformer blocks: pre-LayerNorm residual layers whose cross-attention `attn2` sees a
    single context token. Subclasses list their layers in `LAYERS`, in the official registration order (which
    is the checkpoint's key order)."""

    LAYERS: tuple[str, ...] = ()
    attn2: SingleTokenCrossAttention
    cpu_fast_paths = True

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        context_dim: int,
        operations: Operations,
        attention_fn: AttentionFn = attention,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        for name in self.LAYERS:
            if name.startswith("norm"):
                layer = operations.LayerNorm(dim, **kw)
            elif name.startswith("ff"):
                layer = FeedForward(dim, operations, chunk_tokens, **kw)
            elif name == "attn1":
                layer = SelfAttention(dim, heads, dim_head, operations, attention_fn, chunk_tokens, **kw)
            else:
                layer = SingleTokenCrossAttention(dim, context_dim, heads, dim_head, operations, **kw)
            self.add_module(name, layer)

    def cross_attention(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """`x + attn2(norm2(x), context)` for x `(S, L, dim)` and context `(G, context_dim)`, one token per block of
        S/G consecutive sequences. With one key the result cannot depend on the queries, so neither norm2 nor
        the attention is computed (see `SingleTokenCrossAttention`)."""
        value = self.attn2(context)
        if self.cpu_fast_paths and fused_cpu.applies(x, self.attn2.to_v, self.attn2.to_out[0]):
            # In place: x is always the fresh output of the block's previous residual layer.
            x.unflatten(0, (value.shape[0], -1)).add_(value[:, None, None])
            return x
        return (x.reshape(value.shape[0], -1, x.shape[-1]) + value[:, None]).reshape(x.shape)


class SpatialTransformerBlock(SingleTokenContextBlock):
    """Official `BasicTransformerBlock`: self-attention over an image's pixels, cross-attention to its CLIP token,
    gated FF. norm2 feeds only the single-token cross-attention, so it is unused."""

    LAYERS = ("attn1", "ff", "attn2", "norm1", "norm2", "norm3")

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, transformer_options: dict | None = None
    ) -> torch.Tensor:
        """x `(S, L, dim)`, consumed (the fused CPU path writes into it); context `(G, context_dim)`, one token per
        block of S/G consecutive sequences."""
        x = self.attn1.add_to(x, self.norm1(x), transformer_options)
        x = self.cross_attention(x, context)
        return self.ff.add_to(x, self.norm3(x))


class TimeMixBlock(SingleTokenContextBlock):
    """Official `BasicTransformerTimeMixBlock` on `(S, L, dim)` sequences: FF_in, self-attention, single-token
    cross-attention, FF. norm2 is unused (see `SingleTokenCrossAttention`).

    The official block receives `(B', S, C)` and regroups it with `"(b t) s c -> (b s) t c"`; callers here pass the
    regrouped sequences directly (see `SpatialViewFrameTransformer`).
    """

    LAYERS = ("norm_in", "ff_in", "attn1", "ff", "norm2", "attn2", "norm1", "norm3")

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, transformer_options: dict | None = None
    ) -> torch.Tensor:
        """x `(S, L, dim)`, consumed (the fused CPU path writes into it); context `(G, context_dim)`, one token per
        block of S/G consecutive sequences."""
        x = self.ff_in.add_to(x, self.norm_in(x))
        x = self.attn1.add_to(x, self.norm1(x), transformer_options)
        x = self.cross_attention(x, context)
        return self.ff.add_to(x, self.norm3(x))


def to_view_sequences(x: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """8-view model (`use_3d_attention=False`): `(B·T·V, P, C)` → `(B·T·P, V, C)`, attention across the V views
    of each (b, t, pixel); blocks of P consecutive sequences share the CLIP token of (b, t)."""
    return rearrange(x, "(b t v) p c -> (b t p) v c", b=batch, t=num_frames, v=num_views)


def from_view_sequences(seqs: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """Inverse of `to_view_sequences`."""
    return rearrange(seqs, "(b t p) v c -> (b t v) p c", b=batch, t=num_frames, v=num_views)


def to_3d_attention_sequences(x: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """THE "3D ATTENTION" of the 4-view model (`use_3d_attention=True`), exactly as the official code runs it.

    x `(B·T·V, P, C)` in (b, t, v) order → `(B·P·T, V, C)` sequences. The official code lays the tokens out as
    `(B·V·P, T, C)` (row r = (b·V + v)·P + p) and then lets the TimeMixBlock regroup `"(b t) s c -> (b s) t c"`
    with t = V, so each sequence is **V consecutive rows r** of one frame: V neighbouring raster pixels of the
    *same* view whenever V divides P (72², 36², 18²), straddling adjacent views only in the 9² middle block. It is
    not attention across views. Sequence R = g·T + t (g = r div V) is paired with the context row R div P, i.e.
    CLIP frame `(R div P) mod T` of sample `R div (T·P)` — usually not its own frame; pass `context` reshaped to
    `(B·T, D)` to reproduce that pairing (blocks of P consecutive sequences share one row).
    """
    grouped = rearrange(x, "(b t v) p c -> b (v p) t c", b=batch, t=num_frames, v=num_views)
    return rearrange(grouped, "b (g j) t c -> (b g t) j c", j=num_views)


def from_3d_attention_sequences(seqs: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """Inverse of `to_3d_attention_sequences`: `(B·P·T, V, C)` → `(B·T·V, P, C)`."""
    grouped = rearrange(seqs, "(b g t) j c -> b (g j) t c", b=batch, t=num_frames)
    return rearrange(grouped, "b (v p) t c -> (b t v) p c", v=num_views)


def to_frame_sequences(x: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """Frame mixing: `(B·T·V, P, C)` → `(B·V·P, T, C)`, attention across the T frames of each (b, v, pixel)."""
    return rearrange(x, "(b t v) p c -> (b v p) t c", b=batch, t=num_frames, v=num_views)


def from_frame_sequences(seqs: torch.Tensor, batch: int, num_frames: int, num_views: int) -> torch.Tensor:
    """Inverse of `to_frame_sequences`."""
    return rearrange(seqs, "(b v p) t c -> (b t v) p c", b=batch, t=num_frames, v=num_views)


def mix_in_sequence_layout(
    x: torch.Tensor,
    offset: torch.Tensor,
    layout: str,
    counts: tuple[int, int, int],
    run: Callable[[torch.Tensor], torch.Tensor],
    mixer: AlphaBlender,
) -> torch.Tensor:
    """`mixer(x, from_seqs(run(to_seqs(x + offset))))` in two passes over x instead of four: the sum is written
    straight into the sequence layout and the blend reads the block's output straight from it.

    x `(B·T·V, P, C)`; layout "view" (`to_view_sequences`), "3d" (`to_3d_attention_sequences`) or "frame"
    (`to_frame_sequences`); offset: the view embedding `(B, V, C)` ("view", "3d") or the frame embedding `(T, C)`.
    Both tensors are addressed through one 5-D index grid that is a plain view of x and of the sequences.
    """
    batch, frames, views = counts
    pixels, channels = x.shape[1:]
    if layout == "frame":
        grid = (batch, frames, views, pixels, channels)
        seq_shape = (batch * views * pixels, frames, channels)
        offset_grid = offset[None, :, None, None]

        def in_grid(seqs: torch.Tensor) -> torch.Tensor:
            return seqs.view(batch, views, pixels, frames, channels).permute(0, 3, 1, 2, 4)
    elif layout == "view":
        grid = (batch, frames, views, pixels, channels)
        seq_shape = (batch * frames * pixels, views, channels)
        offset_grid = offset[:, None, :, None]

        def in_grid(seqs: torch.Tensor) -> torch.Tensor:
            return seqs.view(batch, frames, pixels, views, channels).permute(0, 1, 3, 2, 4)
    else:  # "3d": sequence (b, g, t) holds flat (v, p) rows g·V .. g·V + V − 1 of frame t, so the grid is (B, T, P, V)
        grid = (batch, frames, pixels, views, channels)
        seq_shape = (batch * pixels * frames, views, channels)
        offset_grid = offset[:, :, None].expand(-1, -1, pixels, -1).reshape(batch, 1, pixels, views, channels)

        def in_grid(seqs: torch.Tensor) -> torch.Tensor:
            return seqs.view(batch, pixels, frames, views, channels).permute(0, 2, 1, 3, 4)
    x_grid = x.view(grid)
    seqs = x.new_empty(seq_shape)
    torch.add(x_grid, offset_grid, out=in_grid(seqs))
    y = run(seqs)
    del seqs
    out = torch.empty_like(x)
    mixer(x_grid, in_grid(y), out=out.view(grid))
    return out


class SpatialViewFrameTransformer(nn.Module):
    """Official `PostHocSpatialTransformerWithTimeMixingAndMotion` ("ST+M"), depth 1: spatial → view → frame.

    Official attribute names and what they are here:
    * `transformer_blocks.0`: spatial block (`SpatialTransformerBlock`), context = CLIP token of frame t;
    * `time_mix_blocks.0`: **view** mixing (`TimeMixBlock`, context dim = CLIP dim), with `time_mixer` (α_view)
      and `time_mix_time_embed` (view embedding = MLP of the UNet emb of frame 0);
    * `motion_blocks.0`: **frame** mixing (`TimeMixBlock`, context = 4-d reference-view latent at the pixel), with
      `time_mixer_motion` (α_frame) and `time_mix_motion_embed` (frame-index embedding).

    With `cpu_fast_paths` on fp32 CPU, the view and frame mixings use `mix_in_sequence_layout`.
    """

    cpu_fast_paths = True

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        context_dim: int,
        motion_context_dim: int,
        emb_channels: int,
        use_3d_attention: bool,
        view_merge_factor: float,
        frame_merge_factor: float,
        operations: Operations,
        attention_fn: AttentionFn = attention,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        mix = dict(attention_fn=attention_fn, chunk_tokens=chunk_tokens, **kw)
        self.use_3d_attention = use_3d_attention
        self.norm = operations.GroupNorm(32, channels, eps=1e-6, **kw)  # not GroupNorm32: native dtype, eps 1e-6
        self.proj_in = operations.Linear(channels, channels, **kw)
        self.transformer_blocks = nn.ModuleList(
            [SpatialTransformerBlock(channels, heads, dim_head, context_dim, operations, **mix)]
        )
        self.proj_out = operations.Linear(channels, channels, **kw)
        self.time_mix_blocks = nn.ModuleList(
            [TimeMixBlock(channels, heads, dim_head, context_dim, operations, **mix)]
        )
        self.motion_blocks = nn.ModuleList(
            [TimeMixBlock(channels, heads, dim_head, motion_context_dim, operations, **mix)]
        )
        self.time_mix_time_embed = embedding_mlp(emb_channels, 4 * channels, channels, operations, **kw)
        self.time_mix_motion_embed = embedding_mlp(channels, 4 * channels, channels, operations, **kw)
        self.time_mixer = AlphaBlender(view_merge_factor, device)
        self.time_mixer_motion = AlphaBlender(frame_merge_factor, device)

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor,
        cond_view: torch.Tensor,
        num_frames: int,
        num_views: int,
        transformer_options: dict | None = None,
    ) -> torch.Tensor:
        """x `(B·T·V, C, h, w)`, emb `(B·T·V, emb_channels)` (the UNet emb), context `(B, T, D)`,
        cond_view `(B·V, motion_context_dim, H, W)` → `(B·T·V, C, h, w)`."""
        n, _, height, width = x.shape
        counts = (n // (num_frames * num_views), num_frames, num_views)  # (B, T, V)
        x_in = x
        x = self.proj_in(rearrange(self.norm(x), "n c h w -> n (h w) c"))
        clip_tokens = context.reshape(counts[0] * num_frames, -1)  # one CLIP token per (b, t)
        # 1. Spatial: each image attends over its pixels; images (b, t, ·) share the CLIP token of frame t.
        x = self.transformer_blocks[0](x, clip_tokens, transformer_options)
        # 2-3. View then frame mixing, each blended with the stream it started from.
        x = self.view_mixing(x, emb, clip_tokens, counts, transformer_options)
        x = self.frame_mixing(x, cond_view, (height, width), counts, transformer_options)
        x = rearrange(self.proj_out(x), "n (h w) c -> n c h w", h=height)
        return x + x_in

    def view_mixing(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        clip_tokens: torch.Tensor,
        counts: tuple[int, int, int],
        transformer_options: dict | None,
    ) -> torch.Tensor:
        """View TimeMixBlock on `x + view embedding`, blended with x by `time_mixer` (α_view); x's layout
        `(B·T·V, P, C)`.

        The view embedding is the MLP of the UNet emb of **frame 0** of each view (the official block receives the
        UNet emb as its `cam` argument, spec §2.3). Sequences: `to_3d_attention_sequences` for the 4-view model,
        `to_view_sequences` for the 8-view model; both pair blocks of P sequences with one CLIP token per (b, t).
        """
        batch, frames, views = counts
        emb_view = self.time_mix_time_embed(emb.reshape(batch, frames, views, -1)[:, 0])  # (B, V, C)
        block = self.time_mix_blocks[0]
        if self.cpu_fast_paths and fused_cpu.applies(x):
            return mix_in_sequence_layout(
                x, emb_view, "3d" if self.use_3d_attention else "view", counts,
                lambda seqs: block(seqs, clip_tokens, transformer_options), self.time_mixer,
            )
        to_seqs, from_seqs = (
            (to_3d_attention_sequences, from_3d_attention_sequences)
            if self.use_3d_attention
            else (to_view_sequences, from_view_sequences)
        )
        seqs = to_seqs((x.unflatten(0, counts) + emb_view[:, None, :, None]).flatten(0, 2), *counts)
        y = block(seqs, clip_tokens, transformer_options)
        del seqs  # free it before the inverse rearrange allocates
        return self.time_mixer(x, from_seqs(y, *counts))

    def frame_mixing(
        self,
        x: torch.Tensor,
        cond_view: torch.Tensor,
        size: tuple[int, int],
        counts: tuple[int, int, int],
        transformer_options: dict | None,
    ) -> torch.Tensor:
        """Frame TimeMixBlock on `x + frame-index embedding`, blended with x by `time_mixer_motion` (α_frame); x's
        layout `(B·T·V, P, C)`.

        The frame index is chunk-relative (0..T−1). Each (b, v, pixel) sequence's single context token is the
        reference-view latent `cond_view[b, v]` at that pixel, bilinearly resized to this level.
        """
        frame_index = torch.arange(counts[1], device=x.device)
        emb_frame = self.time_mix_motion_embed(timestep_embedding(frame_index, x.shape[-1]).to(x.dtype))  # (T, C)
        ref_latents = rearrange(F.interpolate(cond_view.to(x.dtype), size, mode="bilinear"), "bv c h w -> (bv h w) c")
        block = self.motion_blocks[0]
        if self.cpu_fast_paths and fused_cpu.applies(x):
            return mix_in_sequence_layout(
                x, emb_frame, "frame", counts, lambda seqs: block(seqs, ref_latents, transformer_options),
                self.time_mixer_motion,
            )
        seqs = to_frame_sequences((x.unflatten(0, counts) + emb_frame[:, None, None]).flatten(0, 2), *counts)
        y = block(seqs, ref_latents, transformer_options)
        del seqs  # free it before the inverse rearrange allocates
        return self.time_mixer_motion(x, from_frame_sequences(y, *counts))
