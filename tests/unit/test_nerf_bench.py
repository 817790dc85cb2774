"""The 4D benchmark script runs end to end in its reduced configuration and writes its report."""
import importlib.util
import sys
from pathlib import Path

from tests.prerequisites import shared_reference

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_nerf4d.py"


def test_quick_bench_writes_report(tmp_path, monkeypatch):
    shared_reference("real_scenes", "maidroid_128.safetensors")
    spec = importlib.util.spec_from_file_location("bench_nerf4d", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    results = bench.run(bench.QUICK, out)
    assert set(results["ablation"]) == set(bench.QUICK.ablation_variants) <= set(bench.ABLATION)
    for row in [results["main"], *results["ablation"].values()]:
        assert row["cpu"] > 0 and 5 < row["heldout_psnr"] < 100 and row["render_seconds"] > 0
    # the README's reference points, recomputed from the files
    assert abs(results["baselines"]["perfect but static (frame 0 at every frame)"] - 22.63) < 0.01
    assert abs(results["baselines"]["all-white image"] - 12.27) < 0.01
    assert results["baselines"]["nearest train view's ground truth (ties to the first view)"] < 17.0
    shares = results["main"]["error_shares"]
    assert abs(sum(shares.values()) - 1) < 1e-5 and min(shares.values()) >= 0  # the four classes cover every pixel
    assert list(results["main"]["per_view"]) == ["(15°, 90°)", "(0°, 210°)", "(-10°, 330°)"]
    text = out.read_text()
    assert "held-out PSNR, whole image" in text and "no per-frame visual hulls" in text
