"""The window loop of sv4d_lib.extend with stub networks: references, one noise stream, merging, refinement.

The stub host's "VAE" is the identity between pixels `(N, H, W, 3)` and latents `(N, 3, H, W)`, and its
"sampler" returns start latent + noise + one pixel of the window's reference views, so every window's output is
distinct (its own noise) and carries what it was conditioned on; the tests recompute what the loop must produce.
"""
from __future__ import annotations

import pytest
import torch

from sv4d_lib.extend import WindowHost, extend_video, refine_sigmas, refine_start_step, refine_videos, run_windows
from sv4d_lib.multiview import frame_major_to_views, views_to_frame_major
from sv4d_lib.sampling import edm_sigmas
from sv4d_lib.windows import merge_window, plan_video, plan_windows

V, T, SIZE = 3, 5, 4


class StubHost:
    """Records every call; `host()` is the WindowHost the loop sees."""

    def __init__(self) -> None:
        self.encoded: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.sampled: list[dict[str, torch.Tensor]] = []
        self.done: list[torch.Tensor] = []

    def encode(self, frames: torch.Tensor, references: torch.Tensor | None):
        self.encoded.append((frames.clone(), None if references is None else references.clone()))
        empty = torch.zeros(frames.shape[0] * V, 3, *frames.shape[1:3])
        return {"references": references}, empty

    @staticmethod
    def encode_latents(images: torch.Tensor) -> torch.Tensor:
        return images.movedim(-1, 1).clone()

    def sample(self, conditioning, noise, latent, sigmas):
        self.sampled.append({"noise": noise.clone(), "latent": latent.clone(), "sigmas": sigmas.clone()})
        references = conditioning["references"]
        shift = 0.0 if references is None else references[-1, 0, 0, 0]  # one value: no reduction-order rounding
        return latent + noise + shift

    @staticmethod
    def decode(latents: torch.Tensor) -> torch.Tensor:
        return frame_major_to_views(latents, V).movedim(2, -1)

    def host(self) -> WindowHost:
        return WindowHost(self.encode, self.encode_latents, self.sample, self.decode,
                          lambda videos: self.done.append(videos.clone()))


def input_frames(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))


def window_outputs(stub: StubHost) -> list[torch.Tensor]:
    """What each window decoded `(V, T, H, W, 3)`, recomputed from the recorded sampler calls."""
    outputs = []
    for call, (_, references) in zip(stub.sampled, stub.encoded):
        shift = 0.0 if references is None else references[-1, 0, 0, 0]  # one value: no reduction-order rounding
        outputs.append(StubHost.decode(call["latent"] + call["noise"] + shift))
    return outputs


@pytest.mark.parametrize("crossfade", [False, True])
def test_windows_chain_their_references_and_merge_into_the_video(crossfade):
    frames = input_frames(13)
    windows = plan_windows(13, T, "8v")  # starts 0, 4, 8
    stub = StubHost()
    videos = run_windows(stub.host(), frames, frames, V, windows, edm_sigmas(2), seed=7, crossfade=crossfade)
    assert videos.shape == (V + 1, 13, SIZE, SIZE, 3)
    assert torch.equal(videos[0], frames)
    outputs = window_outputs(stub)
    expected = torch.zeros(V, 13, SIZE, SIZE, 3)
    for k, window in enumerate(windows):
        window_frames, references = stub.encoded[k]
        assert torch.equal(window_frames, frames[window.start : window.start + T])
        if k == 0:
            assert references is None  # the first window samples without reference views
        else:
            # the novel views of the window's first frame as the earlier windows left them
            assert torch.equal(references, expected[:, window.start])
        assert not stub.sampled[k]["latent"].any()  # extension starts from pure noise
        merge_window(expected, outputs[k], window, crossfade)
        shown = torch.cat([frames[None, window.start : window.start + T], expected[:, window.frames]])
        assert torch.equal(stub.done[k], shown)  # the window's frames of every view, after merging
    assert torch.equal(videos[1:], expected)


def test_one_noise_stream_runs_through_all_windows():
    frames = input_frames(13)
    stub = StubHost()
    run_windows(stub.host(), frames, frames, V, plan_windows(13, T, "8v"), edm_sigmas(1), seed=3, crossfade=False)
    generator = torch.Generator().manual_seed(3)
    for call in stub.sampled:
        assert torch.equal(call["noise"], torch.randn(T * V, 3, SIZE, SIZE, generator=generator))


def test_extend_video_pads_for_the_windows_and_cuts_the_padding():
    frames = input_frames(7)
    windows, length, notes = plan_video(7, T, "8v", pad=True)
    assert length == 9 and notes
    stub = StubHost()
    videos = extend_video(stub.host(), frames, V, windows, steps=2, seed=0, crossfade=False)
    assert videos.shape == (V + 1, 7, SIZE, SIZE, 3) and torch.equal(videos[0], frames)
    assert torch.equal(stub.encoded[-1][0][-2:], frames[-1:].expand(2, -1, -1, -1))  # the repeated last frame
    assert all(torch.equal(call["sigmas"], edm_sigmas(2)) for call in stub.sampled)


def test_window_zero_equals_a_single_run_with_the_same_seed():
    frames = input_frames(13)
    long, single = StubHost(), StubHost()
    extend_video(long.host(), frames, V, plan_windows(13, T, "8v"), 2, seed=5, crossfade=False)
    extend_video(single.host(), frames[:T], V, plan_windows(T, T, "8v"), 2, seed=5, crossfade=False)
    assert torch.equal(long.sampled[0]["noise"], single.sampled[0]["noise"])


def test_run_windows_refuses_frames_the_windows_do_not_cover():
    frames = input_frames(12)
    with pytest.raises(ValueError, match="the windows cover 13 frames but got 12"):
        run_windows(StubHost().host(), frames, frames, V, plan_windows(13, T, "8v"), edm_sigmas(1), 0, False)


def multiview(frames: torch.Tensor, seed: int = 1) -> torch.Tensor:
    novel = torch.rand(V, *frames.shape, generator=torch.Generator().manual_seed(seed))
    return torch.cat([frames[None], novel])


def test_refine_at_strength_zero_is_the_round_trip_and_runs_no_window():
    frames = input_frames(9)
    videos = multiview(frames)
    stub = StubHost()
    out, report = refine_videos(stub.host(), frames, videos, plan_windows(9, T, "8v"), 0.0, 10, 0, False, [])
    assert torch.equal(out, videos)  # the stub VAE is lossless
    assert not stub.sampled and "no denoising step" in report


def test_refine_noises_the_source_and_runs_the_tail_of_the_schedule():
    frames = input_frames(9)
    videos = multiview(frames)
    windows = plan_windows(9, T, "8v")
    stub = StubHost()
    out, report = refine_videos(stub.host(), frames, videos, windows, 0.4, 10, 2, False, ["a note"])
    start = refine_start_step(0.4, 10)
    for call, window in zip(stub.sampled, windows):
        source = views_to_frame_major(videos[1:, window.start : window.start + T]).movedim(-1, 1)
        assert torch.equal(call["latent"], source)  # the clean latents of the input views, noised by the sampler
        assert torch.equal(call["sigmas"], edm_sigmas(10)[start:])
    assert torch.equal(out[0], frames)
    first_sigma = refine_sigmas(edm_sigmas(10), 0.4)[0].item()
    assert report.splitlines() == [w.describe() for w in windows] + [
        f"strength 0.4: the last {10 - start} of 10 steps, from sigma {first_sigma:.4g}", "a note"]


def test_refine_at_strength_one_ignores_the_input_and_equals_extension():
    frames = input_frames(9)
    windows = plan_windows(9, T, "8v")
    refined, _ = refine_videos(StubHost().host(), frames, multiview(frames), windows, 1.0, 3, 4, True, [])
    extended = extend_video(StubHost().host(), frames, V, windows, 3, 4, True)
    assert torch.equal(refined, extended)


def test_refine_refuses_videos_of_other_frames():
    frames = input_frames(9)
    with pytest.raises(ValueError, match="has 8 frames of 4×4 per view .* but there are 9 input frames"):
        refine_videos(StubHost().host(), frames, multiview(frames[:8]), plan_windows(9, T, "8v"), 0.5, 4, 0, False, [])
