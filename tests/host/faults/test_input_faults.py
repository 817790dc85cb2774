"""Bad pixels, cameras, grids and output settings through the real host: clear errors, no files, host still works."""
from __future__ import annotations

import json
import logging
import math
import time

import pytest

from sv4d_lib import guidance

from . import harness as h

@pytest.fixture(scope="module")
def ckpt(host):
    return h.base_checkpoint(host.models_dir)


def prepare_node(frames: list) -> dict:
    return {"class_type": "SV4D2PrepareVideo",
            "inputs": {"frames": frames, "size": 64, "mode": "official", "frame_ratio": 0.9}}


def nvvs_prompt(ckpt: str, fault: str = "none", size: int = 64) -> dict:
    """Load → faulty frames → Encode → Sample NVVS (1 step) → Save Views."""
    return {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": ckpt, "variant": "auto", "precision": "fp32", "download": False}},
        "2": h.images_node(12, size, size, fault),
        "3": h.cameras_node(),
        "4": {"class_type": "SV4D2EncodeVideo",
              "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0], "cameras": ["3", 0]}},
        "5": {"class_type": "SV4D2SampleNVVS",
              "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["4", 1], "cameras": ["3", 0],
                         "vae": ["1", 2], "steps": 1, "seed": 0, "grid": guidance.DEFAULT_GRID_SPEC,
                         "decoding_t": 12}},
        "6": h.save_views_node(["5", 1], ["3", 0], "sv4d2_faults/nvvs"),
    }


# --- case 1: NaN/inf pixels into Encode Video --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["nan_frame", "inf_patch"])
def test_non_finite_frames_into_encode_video_are_refused(host, ckpt, fault):
    message = h.assert_fails_cleanly(host, nvvs_prompt(ckpt, fault), r"frames contain \d+ NaN or infinite values")
    assert "SV4D2EncodeVideo" in message


def test_non_finite_views_into_refine_are_refused(host, ckpt):
    prompt = nvvs_prompt(ckpt)
    prompt["7"] = h.images_node(5 * 12, 64, 64, "nan_last")  # in the last novel view, which is VAE-encoded
    prompt["5"] = {"class_type": "SV4D2Refine",
                   "inputs": {"model": ["1", 0], "clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0],
                              "cameras": ["3", 0], "multiview": ["7", 0], "strength": 0.5, "steps": 2, "seed": 0,
                              "grid": guidance.DEFAULT_GRID_SPEC, "decoding_t": 12, "crossfade": False,
                              "pad_frames": False}}
    del prompt["4"]
    prompt["6"]["inputs"]["images"] = ["5", 0]
    message = h.assert_fails_cleanly(host, prompt, r"contain \d+ NaN or infinite values")
    assert "SV4D2Refine" in message


# --- case 5: Prepare Video ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["nan_frame", "inf_patch"])
def test_non_finite_frames_into_prepare_video_are_refused(host, fault):
    prompt = {"1": h.images_node(3, 48, 40, fault), "2": prepare_node(["1", 0]),
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "sv4d2_faults/p"}}}
    h.assert_fails_cleanly(host, prompt, r"frames contain \d+ NaN or infinite values \(in frame\(s\) \[[01]\]")


def test_an_all_black_video_is_refused(host):
    prompt = {"1": h.images_node(3, 48, 40, "black"), "2": prepare_node(["1", 0]),
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "sv4d2_faults/p"}}}
    h.assert_fails_cleanly(host, prompt, "frames are entirely black")


def test_a_frame_without_background_is_taken_whole_with_a_warning(host, caplog):
    prompt = {"1": h.images_node(3, 48, 40), "2": prepare_node(["1", 0]),
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    with caplog.at_level(logging.WARNING):
        frames = host.run(prompt).outputs["2"][0]
    assert frames.shape == (3, 64, 64, 3)
    assert any("no white background" in r.getMessage() and "mask" in r.getMessage() for r in caplog.records)


# --- case 2: camera angles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("azimuth", ["NaN", "Infinity"])
def test_non_finite_custom_azimuths_are_refused(host, azimuth):
    cameras = '{"elevations_deg": [0, 0, 0, 0, 0], "azimuths_deg": [0, %s, 90, 180, 270]}' % azimuth
    prompt = {"1": h.cameras_node(cameras, "custom"),
              "2": {"class_type": "SV4D2SyntheticScene", "inputs": {"cameras": ["1", 0], "frames": 1, "width": 16,
                                                                    "height": 16}},
              "3": h.save_views_node(["2", 0], ["1", 0], "sv4d2_faults/cams")}
    ok, _, _ = host.validate(prompt)
    if ok:  # refused when the node runs
        h.assert_fails_cleanly(host, prompt, "finite")
    else:
        h.assert_fails_cleanly(host, prompt, "finite", at_validation=True)


# --- case 3 and 8: Save Views ------------------------------------------------------------------------------------


def views_prompt(prefix: str = "sv4d2_faults/views", fps: float = 10.0, width: int = 16, height: int = 16,
                 count: int = 10, fault: str = "none") -> dict:
    return {"1": h.images_node(count, width, height, fault), "2": h.cameras_node(),
            "3": h.save_views_node(["1", 0], ["2", 0], prefix, fps)}


def test_odd_sizes_are_padded_and_every_listed_file_is_a_readable_video(host):
    import imageio_ffmpeg

    before = h.output_files(host)
    result = host.run(views_prompt(width=17, height=9))
    written = h.listed_files(host, result.ui["3"])
    assert [p.name[-8:] for p in written] == [f"v{v:03d}.mp4" for v in range(5)]
    assert h.output_files(host) - before == set(written)  # nothing else, no temporaries
    for path in written:
        assert path.stat().st_size > 0
        assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 2
    reader = imageio_ffmpeg.read_frames(str(written[0]))
    assert next(reader)["size"] == (18, 10)  # one repeated edge column and row


@pytest.mark.parametrize("prefix, problem", [
    ("x" * 300, "300 bytes long"),
    ("sv4d2_faults/" + "y" * 240, "240 bytes long"),
    ("", "no visible file name"),
    ("   ", "no visible file name"),
    ("sv4d2_faults/.hidden", "no visible file name"),
])
def test_unusable_prefixes_are_refused_before_running(host, prefix, problem):
    h.assert_fails_cleanly(host, views_prompt(prefix), problem, at_validation=True)


@pytest.mark.parametrize("fps", [math.nan, 0.0])
def test_unusable_fps_is_refused_before_running(host, fps):
    h.assert_fails_cleanly(host, views_prompt(fps=fps), "fps", at_validation=True)


def test_unusable_fps_from_a_link_is_refused_before_writing(host):
    prompt = views_prompt()
    prompt["9"] = {"class_type": "PrimitiveFloat", "inputs": {"value": math.nan}}
    prompt["3"]["inputs"]["fps"] = ["9", 0]
    h.assert_fails_cleanly(host, prompt, "fps must be a positive finite number")


def test_non_finite_images_are_not_saved(host):
    h.assert_fails_cleanly(host, views_prompt(fault="nan_frame"), r"images contain \d+ NaN")


def test_interrupting_save_views_stops_within_a_frame_and_leaves_no_file(host, monkeypatch):
    import comfy.utils

    watch, updates = h.Stopwatch(), []

    def hook(value, total, preview, node_id=None):
        updates.append(value)
        if value == 3:
            watch.request_interrupt()

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    before = h.output_files(host)
    with pytest.raises(h.NodeFailed, match="execution_interrupted"):
        host.run(views_prompt(count=5 * 40, width=64, height=64))
    stopped = time.perf_counter()
    assert updates[-1] == 3 and stopped - watch.requested < 1.0
    assert h.output_files(host) == before
    monkeypatch.undo()
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(False)
    h.assert_still_works(host)


# --- case 7: CFG grid validation ---------------------------------------------------------------------------------


def grid_prompt(ckpt: str, grid: str) -> dict:
    prompt = nvvs_prompt(ckpt)
    prompt["5"]["inputs"]["grid"] = grid
    return prompt


def cfg_grid_prompt(ckpt: str, grid: str) -> dict:
    return {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": ckpt, "variant": "auto", "precision": "fp32", "download": False}},
        "2": h.images_node(12),
        "3": h.cameras_node(),
        "4": {"class_type": "SV4D2EncodeVideo",
              "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0], "cameras": ["3", 0]}},
        "5": {"class_type": "SV4D2CFGGrid",
              "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["4", 1], "grid": grid}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
    }


@pytest.mark.parametrize("make_prompt", [cfg_grid_prompt, grid_prompt])
@pytest.mark.parametrize("grid, problem", [
    (json.dumps({"preset": "ramp", "shape": [3000, 3000]}), "num_frames must be a whole number from 1 to 256"),
    (json.dumps({"preset": "ramp", "shape": [100000, 100000]}), "from 1 to 256"),
    ("[" * 100000 + "]" * 100000, "grid spec is 200000 characters long"),
    ("[" * 20000 + "]" * 20000, "nested too deeply"),
    ('{"preset": "ramp", "params": {"min": NaN}}', "must be a number"),
])
def test_grid_specs_are_checked_with_bounded_work(host, ckpt, make_prompt, grid, problem):
    start = time.perf_counter()
    h.assert_fails_cleanly(host, make_prompt(ckpt, grid), problem, at_validation=True)
    assert time.perf_counter() - start < 5.0  # includes the healthy prompt that follows
