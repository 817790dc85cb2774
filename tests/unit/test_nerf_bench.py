"""The 4D benchmark script runs end to end in its reduced configuration and writes its report."""
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_nerf4d.py"


def test_quick_bench_writes_report(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_nerf4d", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    results = bench.run(bench.QUICK, out)
    assert [row["iterations"] for row in results["curve"]] == list(bench.QUICK.iterations)
    assert set(results["ablation"]) == {"visibility + progressive", "no visibility weighting",
                                        "no progressive frames", "neither"}
    for row in results["curve"] + list(results["ablation"].values()):
        assert row["seconds"] > 0 and 0 < row["psnr"] < 100 and -1 <= row["ssim"] <= 1
    text = out.read_text()
    assert "| 20 |" in text and "no visibility weighting" in text
