"""The example workflows' input files reach ComfyUI's input folder when the pack loads, never over a user's file."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_pack():
    spec = importlib.util.spec_from_file_location("sv4d2_pack_under_test", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    return pack


def test_comfyui_start_installed_the_samples(comfy_host):
    for name in load_pack().SAMPLE_INPUTS:
        assert (comfy_host.input_dir / name).read_bytes() == (REPO / "assets" / name).read_bytes(), name


def test_install_copies_missing_samples_and_keeps_the_users_files(tmp_path):
    pack = load_pack()
    user_file = tmp_path / "input" / "sample_object.mp4"
    user_file.parent.mkdir()
    user_file.write_bytes(b"the user's own video")
    copied = pack.install_sample_inputs(str(tmp_path / "input"))
    assert copied == [n for n in pack.SAMPLE_INPUTS if n != "sample_object.mp4"] and copied
    assert user_file.read_bytes() == b"the user's own video"
    for name in copied:
        assert (tmp_path / "input" / name).read_bytes() == (REPO / "assets" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == sorted(pack.SAMPLE_INPUTS)  # no temp files
    assert pack.install_sample_inputs(str(tmp_path / "input")) == []
