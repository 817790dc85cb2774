"""The 4D benchmark script runs end to end in its reduced configuration, on both layouts of the dev scene, scores
the field and the exported GLBs, and writes its report."""
import importlib.util
import sys
from pathlib import Path

from tests.prerequisites import shared_reference

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_nerf4d.py"


def test_quick_bench_writes_report(tmp_path, monkeypatch):
    shared_reference("real_scenes", "maidroid_128.safetensors")
    shared_reference("real_scenes_9v", "maidroid_128.safetensors")
    spec = importlib.util.spec_from_file_location("bench_nerf4d", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    results = bench.run(bench.QUICK, out, ablation=True)
    assert set(results["ablation"]) == set(bench.QUICK.ablation_variants) <= set(bench.ABLATION)
    assert list(results["layouts"]) == list(bench.LAYOUTS)
    for layout in results["layouts"].values():
        rows = [layout["field"], *layout["glb"].values()]
        assert set(layout["glb"]) == {"views", "field"}
        for row in rows:
            assert 5 < row["psnr"] < 100 and 0 < row["psnr_inside"] < row["psnr"]  # the object is the hard part
            assert list(row["per_view"]) == ["(15°, 90°)", "(0°, 210°)", "(-10°, 330°)"]
            shares = row["error_shares"]
            assert abs(sum(shares.values()) - 1) < 1e-5 and min(shares.values()) >= 0  # four classes cover all
        assert layout["cpu"] > 0 and layout["render_seconds"] > 0
        # the README's reference point, recomputed from the files (the same truth in both layouts)
        assert abs(layout["baselines"]["perfect but static (frame 0 at every frame)"] - 22.63) < 0.01
        assert abs(layout["baselines"]["all-white image"] - 12.27) < 0.01
    nearest = [r["baselines"]["nearest train view's ground truth (ties to the first view)"]
               for r in results["layouts"].values()]
    assert abs(nearest[0] - 15.36) < 0.5 and abs(nearest[1] - 18.79) < 0.05  # the READMEs' figures
    for row in results["ablation"].values():
        assert row["cpu"] > 0 and 5 < row["field"]["psnr"] < 100
    text = out.read_text()
    assert "inside the object" in text and "GLB, texture from the views" in text and "8-view layout" in text
    assert "no per-frame visual hulls" in text
