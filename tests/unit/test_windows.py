"""Windows over long videos: official starts, conditioning sources, overlaps, cross-fade and padding.

The reference is an independent transcription of the script's statements (simple_video_sample_4d2.py `sample()`
with the PR #459 fix, spec §5.3-§5.4), run on an image matrix of markers so that every write and read is visible.
"""
from __future__ import annotations

import pytest
import torch

from sv4d_lib.windows import (
    covered_frames,
    crossfade_weights,
    merge_window,
    pad_frames,
    padded_length,
    plan_windows,
    uncovered_frames,
    window_starts,
)

OFFICIAL_T = {"4v": 12, "8v": 5}
SCRIPT_NAMES = {"4v": "sv4d2", "8v": "sv4d2_8views"}


def transcribed_script(n_frames: int, T: int, variant: str) -> dict:
    """The script's loop over chunks, writing the chunk index into img_matrix[t][v ≥ 1] instead of images."""
    sv4d2_model = SCRIPT_NAMES[variant]
    V = 2  # the number of views does not influence the schedule
    img_matrix = [[None] * (V + 1) for _ in range(n_frames)]
    for t in range(n_frames):
        img_matrix[t][0] = "input"
    for v in range(1, V + 1):
        img_matrix[0][v] = "zeros"  # images_t0
    if sv4d2_model == "sv4d2":
        t0_list = range(0, n_frames, T - 1)
    else:
        t0_list = range(0, n_frames - T + 1, T - 1)
    chunks = []
    for chunk, t0 in enumerate(t0_list):
        if t0 + T > n_frames:
            t0 = n_frames - T
        frame_indices = list(range(t0, t0 + T))
        cond_mv = False if t0 == 0 else True  # noqa: SIM211 (the script's statement, verbatim)
        cond_view = [img_matrix[t0][v] for v in range(1, V + 1)]
        assert None not in cond_view  # torch.cat of None is the unfixed script's crash
        chunks.append({"t0": t0, "cond_mv": cond_mv, "cond_source": cond_view[0] if cond_mv else None})
        for t in frame_indices:
            for v in range(1, V + 1):
                img_matrix[t][v] = chunk
    written = [row[1] for row in img_matrix]
    return {
        "chunks": chunks,
        "final_writer": [w if isinstance(w, int) else None for w in written],
        "never_generated": [t for t, w in enumerate(written) if w is None],
    }


# The official window sizes plus others, each for 120 video lengths n ≥ T.
CASES = [(variant, T) for variant in ("4v", "8v") for T in sorted({OFFICIAL_T[variant], 2, 3, 4, 7})]
LENGTHS = 120


@pytest.mark.parametrize("variant,T", CASES)
def test_starts_and_conditioning_match_the_transcribed_script(variant, T):
    for n in range(T, T + LENGTHS):
        script = transcribed_script(n, T, variant)
        windows = plan_windows(n, T, variant)
        assert window_starts(n, T, variant) == [c["t0"] for c in script["chunks"]], n
        assert [w.start for w in windows] == [c["t0"] for c in script["chunks"]], n
        assert [w.cond_mv for w in windows] == [c["cond_mv"] for c in script["chunks"]], n
        assert [w.cond_window for w in windows] == [c["cond_source"] for c in script["chunks"]], n
        assert uncovered_frames(n, T, variant) == script["never_generated"], n


@pytest.mark.parametrize("variant,T", CASES)
def test_overwriting_merge_leaves_each_frame_to_the_scripts_last_writer(variant, T):
    for n in range(T, T + LENGTHS):
        video = torch.full((1, n), -1.0)
        for w in plan_windows(n, T, variant):
            merge_window(video, torch.full((1, T), float(w.index)), w, crossfade=False)
        expected = [-1.0 if w is None else float(w) for w in transcribed_script(n, T, variant)["final_writer"]]
        assert video[0].tolist() == expected, n


@pytest.mark.parametrize("variant,T", CASES)
def test_overlap_is_exactly_the_frames_earlier_windows_wrote(variant, T):
    for n in range(T, T + LENGTHS):
        written: set[int] = set()
        for w in plan_windows(n, T, variant):
            assert list(w.overlap) == [t for t in w.frames if t in written], n
            written.update(w.frames)
        assert sorted(written) == list(range(covered_frames(n, T, variant))), n


def test_8v_windows_overlap_by_exactly_their_conditioning_frame():
    for n in range(5, 60):
        for w in plan_windows(n, 5, "8v")[1:]:
            assert list(w.overlap) == [w.start] and w.cond_window == w.index - 1


def test_too_short_video_says_how_many_frames_are_needed():
    with pytest.raises(ValueError, match=r"at least 12 frames.*pad"):
        window_starts(7, 12, "4v")
    with pytest.raises(ValueError, match=r"at least 5 frames"):
        plan_windows(4, 5, "8v")


def test_unknown_variant_and_degenerate_window_are_rejected():
    with pytest.raises(ValueError, match="unknown model variant"):
        window_starts(20, 12, "sv4d2")
    with pytest.raises(ValueError, match="at least 2 frames"):
        window_starts(20, 1, "4v")


@pytest.mark.parametrize("variant,T", [("4v", 12), ("8v", 5), ("8v", 3)])
def test_padded_length_is_the_shortest_fully_covered_length(variant, T):
    for n in range(1, 50):
        length = padded_length(n, T, variant)
        assert length >= max(n, T)
        assert uncovered_frames(length, T, variant) == []
        # Minimal: every shorter length that still holds the video is too short or leaves frames uncovered.
        for shorter in range(max(n, T), length):
            assert uncovered_frames(shorter, T, variant) != []


def test_pad_frames_repeats_the_last_frame():
    frames = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2, 1)
    padded = pad_frames(frames, 6)
    assert padded.shape == (6, 2, 2, 1)
    assert torch.equal(padded[:3], frames)
    assert all(torch.equal(padded[i], frames[-1]) for i in range(3, 6))
    assert torch.equal(pad_frames(frames, 3), frames)
    with pytest.raises(ValueError, match="down to"):
        pad_frames(frames, 2)


@pytest.mark.parametrize("variant,T,n", [("4v", 12, 21), ("4v", 12, 24), ("4v", 12, 36), ("8v", 5, 21), ("4v", 12, 12)])
def test_crossfade_ramps_over_the_overlap_only(variant, T, n):
    for w in plan_windows(n, T, variant):
        weights = crossfade_weights(w)
        length = len(w.overlap)
        ramp = weights[:length]
        assert torch.all(weights[length:] == 1)
        assert torch.all((ramp > 0) & (ramp < 1))
        assert torch.all(ramp[1:] > ramp[:-1])
        # Symmetric ramp: equal spacing 1/(L + 1) from both ends, so mirrored weights sum to one.
        assert torch.allclose(ramp + ramp.flip(0), torch.ones(length))
        if length == 1:
            assert ramp.item() == 0.5


def test_crossfade_merge_blends_earlier_and_new_frames_with_the_weights():
    windows = plan_windows(21, 12, "4v")  # window 1 overlaps frames 9-11
    video = torch.zeros(3, 21, 2, 2, 3)
    merge_window(video, torch.full((3, 12, 2, 2, 3), 2.0), windows[0], crossfade=True)
    assert torch.all(video[:, :12] == 2.0) and torch.all(video[:, 12:] == 0.0)
    merge_window(video, torch.full((3, 12, 2, 2, 3), 6.0), windows[1], crossfade=True)
    w = crossfade_weights(windows[1])
    expected = w * 6.0 + (1 - w) * 2.0
    assert torch.allclose(video[0, 9:, 0, 0, 0], expected)
    assert torch.all(video[:, :9] == 2.0)


def test_overwrite_merge_replaces_overlap_exactly():
    windows = plan_windows(21, 12, "4v")
    video = torch.zeros(2, 21, 1)
    first, second = torch.rand(2, 12, 1), torch.rand(2, 12, 1)
    merge_window(video, first, windows[0], crossfade=False)
    merge_window(video, second, windows[1], crossfade=False)
    assert torch.equal(video[:, :9], first[:, :9])
    assert torch.equal(video[:, 9:], second)


def test_describe_names_frames_source_and_overlap():
    windows = plan_windows(24, 12, "4v")
    assert windows[0].describe() == "window 0: frames 0-11, no reference views, no overlap"
    assert windows[1].describe() == (
        "window 1: frames 11-22, conditioned on the views of frame 11 from window 0, overlaps frame 11"
    )
    assert windows[2].describe() == (
        "window 2: frames 12-23, conditioned on the views of frame 12 from window 1, overlaps frames 12-22"
    )
