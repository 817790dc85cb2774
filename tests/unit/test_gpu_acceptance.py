"""bench/gpu_acceptance.py runs every part in its tiny CPU configuration and writes its section, so the one-shot GPU
script cannot rot between GPU runs. (The `compile` part is left out: dynamo tracing even the tiny UNet takes
minutes on the shared CI cores; it runs only in the GPU configuration.)"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_acceptance.py"
PARTS = ["sample", "unet-memory", "decode", "fit", "hashgrid"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    if not module.DEV_SCENE.is_file():
        message = f"the real dev scene is missing at {module.DEV_SCENE} (shared/reference/real_scenes beside the clone)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return module


def test_tiny_run_writes_every_part_into_its_section(bench, tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nkept text\n")
    assert bench.main(["--tiny", "--parts", ",".join(PARTS), "--out", str(out)]) == 0
    first = out.read_text()
    assert first.startswith("# Benchmarks\n\nkept text\n") and first.count(bench.SECTION_START) == 1
    section = first.split(bench.SECTION_START)[1].split(bench.SECTION_END)[0]
    assert "FAILED" not in section and "tiny CPU smoke configuration" in section
    for part in PARTS:
        assert f"| {part} |" in section
    assert "decoding_t 2" in section and "held-out PSNR" in section and "torch hash grid" in section
    # A second run replaces the section instead of appending another one.
    assert bench.main(["--tiny", "--parts", "hashgrid", "--out", str(out)]) == 0
    second = out.read_text()
    assert second.count(bench.SECTION_START) == 1 and "| sample |" not in second and "kept text" in second


def test_a_failing_part_is_reported_and_fails_the_run(bench, tmp_path):
    out = tmp_path / "benchmarks.md"
    missing = tmp_path / "no_scene.safetensors"
    assert bench.main(["--tiny", "--parts", "fit", "--scene", str(missing), "--out", str(out)]) == 1
    assert "FAILED: FileNotFoundError" in out.read_text()
