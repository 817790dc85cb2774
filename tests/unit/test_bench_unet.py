"""bench/bench_unet.py on a tiny network: every mode runs on one set of weights and inputs, and the official network
is imported from a source checkout without its package `__init__`s and called the official way. (The real official
code is not installable from a registry; the bench's figures in docs/bench_unet.md come from a real checkout.)"""
from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from .unet_tiny import TINY

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_unet.py"

# A stand-in for generative-models: the packages' `__init__`s fail like the real ones do without the training stack,
# and `SpatialUNetModelWithTime` is this pack's UNet behind the official constructor and call signature.
FAKE_VIDEO_MODEL = '''
from sv4d_lib.model import SV4D2UNet

CALLS = []


class SpatialUNetModelWithTime(SV4D2UNet):
    def forward(self, x, timesteps, context=None, y=None, cam=None, time_context=None, num_video_frames=None,
                image_only_indicator=None, cond_view=None, cond_motion=None, time_step=None):
        batch, frames = context.shape[:2]
        views = num_video_frames // frames
        assert cond_motion.shape == (batch * frames, 4, *x.shape[2:]), cond_motion.shape
        assert image_only_indicator.shape == (batch, num_video_frames) and not image_only_indicator.any()
        CALLS.append(num_video_frames)
        return super().forward(x, timesteps, context, y, cond_view, num_frames=frames, num_views=views)
'''


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_unet", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(module.CASES, "tiny", (dict(TINY), 1, 2, 4, 6, "cpu"))
    for name in [n for n in sys.modules if n == "sgm" or n.startswith("sgm.")]:
        monkeypatch.delitem(sys.modules, name)
    yield module
    for name in [n for n in sys.modules if n == "sgm" or n.startswith("sgm.")]:
        del sys.modules[name]


def fake_checkout(root: Path) -> Path:
    package = root / "sgm" / "modules" / "diffusionmodules"
    package.mkdir(parents=True)
    for folder in (root / "sgm", root / "sgm" / "modules", package):
        (folder / "__init__.py").write_text("raise ImportError('the training stack is not installed')\n")
    (package / "video_model.py").write_text(textwrap.dedent(FAKE_VIDEO_MODEL))
    return root


def test_reference_and_ours_alternate_on_the_same_weights(bench):
    row = bench.side_by_side("tiny", 2, None)
    assert set(row["median"]) == {"reference", "ours"} and all(len(t) == 2 for t in row["samples"].values())
    assert row["max_abs_out"] > 0.01
    assert row["max_abs_diff"]["ours"] <= 1e-5 * max(1.0, row["max_abs_out"])
    assert row["speedup"]["reference"] == pytest.approx(row["median"]["reference"][0] / row["median"]["ours"][0])
    table = "\n".join(bench.speed_table([row]))
    assert "| tiny |" in table and "| reference |" in table and "| ours |" in table


def test_official_network_comes_from_the_checkout_with_the_same_weights(bench, tmp_path):
    row = bench.side_by_side("tiny", 1, fake_checkout(tmp_path))
    assert sys.modules["sgm.modules.diffusionmodules.video_model"].CALLS == [8]  # T·V = 2·4, called once
    assert set(row["median"]) == {"reference", "ours", "official"}
    assert row["max_abs_diff"]["official"] <= 1e-5 * max(1.0, row["max_abs_out"])


def test_a_folder_that_is_not_a_checkout_is_refused_with_the_fix(bench, tmp_path):
    with pytest.raises(SystemExit, match="Stability-AI/generative-models"):
        bench.side_by_side("tiny", 1, tmp_path)
