"""Windows of the official script (with the PR #459 fix): golden `chunk_schedules.json`."""
from __future__ import annotations

import json

import pytest

from sv4d_lib.windows import plan_windows, uncovered_frames, window_starts

VARIANTS = {"sv4d2": "4v", "sv4d2_8views": "8v"}


@pytest.fixture(scope="module")
def cases(golden_dir):
    return json.loads((golden_dir / "chunk_schedules.json").read_text())["cases"]


def test_schedules_match_the_official_script(cases):
    for name, case in cases.items():
        variant, T, n = VARIANTS[case["model"]], case["T"], case["n_frames"]
        assert window_starts(n, T, variant) == case["t0_list"], name
        windows = plan_windows(n, T, variant)
        assert len(windows) == len(case["chunks"]), name
        for window, chunk in zip(windows, case["chunks"]):
            assert list(window.frames) == chunk["frames"], name
            assert window.cond_mv == chunk["cond_mv"], name
            # The script reads the conditioning frame from its image matrix: zeros for t0 = 0, else an earlier
            # chunk's output; a conditioned window must therefore name that chunk.
            assert chunk["cond_frame_already_generated"] == (not window.cond_mv or window.cond_window is not None)
            if window.cond_mv:
                assert window.start in windows[window.cond_window].frames
        assert uncovered_frames(n, T, variant) == case["frames_never_generated"], name

