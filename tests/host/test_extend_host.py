"""SV4D2 Extend Video in real ComfyUI with the tiny 8-view engine (T = 5 frames × V = 8 views per window).

A 13-frame video runs 3 windows (starts 0, 4, 8). The conditioning every window received is recorded from outside
the node by a MODEL wrapper (window_fixtures.RecordModelNode); from the recorded last step of each window the test
rebuilds that window's output latents, so it can check the autoregressive chain without touching node internals.
"""
from __future__ import annotations

import json

import pytest
import torch

from sv4d_lib import guidance, multiview
from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.windows import merge_window, plan_windows

from . import nvvs_fixtures as fx
from . import window_fixtures as wf
from .inprocess import NodeFailed

T, V, SIZE, STEPS, SEED, N = 5, 8, 64, 1, 11, 13
CAMERAS = OrbitCameras.preset("8v")  # what the prompts' SV4D2 Cameras node outputs
LATENT_SCALE = 0.18215
GRID = json.dumps({"preset": "official_8v"})
SCALES = guidance.cfg_grid("official_8v", T, V).flatten()


@pytest.fixture(scope="module")
def host(comfy_host, golden_dir):
    yield from wf.tiny_8v_host(comfy_host, golden_dir)


def extend_prompt(ckpt: str, count: int = N, preset: str = "8v", crossfade: bool = False, pad: bool = False) -> dict:
    return {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": ckpt, "variant": "auto", "precision": "fp32", "download": False}},
        "2": {"class_type": fx.FRAMES_NODE, "inputs": {"count": count, "size": SIZE, "height": 0, "seed": 5}},
        "3": {"class_type": "SV4D2Cameras", "inputs": {"preset": preset, "elevation_deg": 0.0,
                                                      "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 1]}'}},
        "4": {"class_type": wf.RECORD_NODE, "inputs": {"model": ["1", 0], "tag": "model"}},
        "5": {"class_type": "SV4D2ExtendVideo",
              "inputs": {"model": ["4", 0], "clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0],
                         "cameras": ["3", 0], "steps": STEPS, "seed": SEED, "grid": GRID, "decoding_t": 2,
                         "crossfade": crossfade, "pad_frames": pad}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


def run_recorded(host, prompt: dict):
    comfy_host, _ = host
    wf.RecordModelNode.records = {}
    result = comfy_host.run(prompt)
    return result, wf.window_steps(wf.RecordModelNode.records["model"], STEPS)


@pytest.fixture(scope="module")
def overwrite_run(host):
    import comfy.utils

    progress = []

    def hook(value, total, preview, node_id=None):
        progress.append((value, total, preview))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
        result, windows = run_recorded(host, extend_prompt(host[1]))
    return result, windows, progress


def window_views(vae, step: dict, scales: torch.Tensor = SCALES, num_views: int = V) -> torch.Tensor:
    """Decoded novel views `(V, T, H, W, 3)` of a window, from its recorded last step."""
    latents = wf.final_latents(step, scales, LATENT_SCALE)
    return torch.stack([vae.decode(view) for view in multiview.frame_major_to_views(latents, num_views)])


@torch.inference_mode()
def test_each_window_is_conditioned_on_the_previous_windows_views_of_its_first_frame(overwrite_run):
    result, windows, _ = overwrite_run
    vae = result.outputs["1"][2]
    plan = plan_windows(N, T, "8v")
    assert [w.start for w in plan] == [0, 4, 8] and len(windows) == 3
    for steps in windows:
        assert all(torch.all(s["uncond"]["cond_view"] == 0) for s in steps)  # the negative never sees references
    assert all(torch.all(s["cond"]["cond_view"] == 0) for s in windows[0])  # first window: masked, as official
    for k in (1, 2):
        previous = window_views(vae, windows[k - 1][-1])
        frame = plan[k].start - plan[k - 1].start
        expected = vae.encode(previous[:, frame]).float()  # (V, 4, h, w): re-encoded decoded views
        for step in windows[k]:
            rows = step["cond"]["cond_view"].reshape(T, V, *expected.shape[1:])
            assert torch.all(rows == rows[:1])  # the same references for every frame of the window
            assert (rows[0] - expected).abs().max() <= 1e-4 * max(1.0, expected.abs().max().item())
        assert not torch.allclose(windows[k][0]["cond"]["cond_view"], windows[k - 1][0]["cond"]["cond_view"])


@torch.inference_mode()
def test_output_is_the_overwrite_merge_of_the_windows(overwrite_run):
    result, windows, _ = overwrite_run
    vae, frames = result.outputs["1"][2], result.outputs["2"][0]
    images, report = result.outputs["5"]
    assert images.shape == ((V + 1) * N, SIZE, SIZE, 3)
    videos = multiview.split_views(images, CAMERAS)
    assert torch.equal(videos[0], frames)
    expected = torch.zeros_like(videos[1:])
    for window, steps in zip(plan_windows(N, T, "8v"), windows):
        merge_window(expected, window_views(vae, steps[-1]), window, crossfade=False)
    assert (videos[1:] - expected).abs().max() <= 1e-4
    assert report.splitlines() == [w.describe() for w in plan_windows(N, T, "8v")]
    assert result.ui["6"]["images"]


def test_one_progress_bar_with_a_decoded_preview_per_window(overwrite_run):
    _, _, progress = overwrite_run
    totals = {total for _, total, _ in progress}
    assert len(totals) == 1  # one bar for all windows
    values = [value for value, _, _ in progress]
    assert values == sorted(values) and values[-1] == totals.pop()
    window_previews = [p for _, _, p in progress if p is not None and p[1].size[0] > SIZE]
    assert len(window_previews) == 3  # views × frames grids, wider than one frame


@torch.inference_mode()
def test_first_window_equals_sample_nvvs_with_the_same_seed(host, overwrite_run):
    result, windows, _ = overwrite_run
    prompt = extend_prompt(host[1])
    prompt["7"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": T}}
    prompt["8"] = {"class_type": "SV4D2EncodeVideo", "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2],
                                                               "frames": ["7", 0], "cameras": ["3", 0]}}
    prompt["5"] = {"class_type": "SV4D2SampleNVVS",
                   "inputs": {"model": ["4", 0], "positive": ["8", 0], "negative": ["8", 1], "cameras": ["3", 0],
                              "vae": ["1", 2], "steps": STEPS, "seed": SEED, "grid": GRID, "decoding_t": 2,
                              "frames": ["7", 0]}}
    prompt["6"]["inputs"]["images"] = ["5", 1]
    nvvs_run, nvvs_windows = run_recorded(host, prompt)
    assert torch.equal(windows[0][0]["cond"]["x"], nvvs_windows[0][0]["cond"]["x"])  # the same noise
    nvvs = multiview.split_views(nvvs_run.outputs["5"][1], CAMERAS)
    extended = multiview.split_views(result.outputs["5"][0], CAMERAS)
    untouched = plan_windows(N, T, "8v")[1].start  # frames 0-3 are window 0's alone
    assert (extended[:, :untouched] - nvvs[:, :untouched]).abs().max() <= wf.IMAGE_ATOL


@torch.inference_mode()
def test_crossfade_blends_the_shared_frames(host):
    result, windows = run_recorded(host, extend_prompt(host[1], crossfade=True))
    vae = result.outputs["1"][2]
    videos = multiview.split_views(result.outputs["5"][0], CAMERAS)
    plan = plan_windows(N, T, "8v")
    outputs = [window_views(vae, steps[-1]) for steps in windows]
    expected = torch.zeros_like(videos[1:])
    for window, views in zip(plan, outputs):
        merge_window(expected, views, window, crossfade=True)
    assert (videos[1:] - expected).abs().max() <= 1e-4
    for k in (1, 2):  # 8-view windows share one frame: window k−1's last = window k's first, blended 50/50
        t = plan[k].start
        assert (videos[1:, t] - 0.5 * (outputs[k - 1][:, -1] + outputs[k][:, 0])).abs().max() <= 1e-4
        assert (videos[1:, t] - outputs[k][:, 0]).abs().max() > 1e-2  # not the official overwrite
    # Window k is conditioned on frame t as window k−1 left it, before the blend (the 8-view overlap is that frame).
    previous = outputs[0][:, -1]
    rows = windows[1][0]["cond"]["cond_view"].reshape(T, V, 4, SIZE // 8, SIZE // 8)[0]
    assert (rows - vae.encode(previous).float()).abs().max() <= 1e-4 * max(1.0, rows.abs().max().item())


@torch.inference_mode()
def test_4v_clamped_window_is_conditioned_inside_the_overlap_and_crossfades_it(host):
    """4-view, 13 frames: starts [0, 1]; window 1 re-generates frames 1-11 and is conditioned on frame 1."""
    t4, v4, n4 = 12, 4, 13
    prompt = extend_prompt(fx.write_checkpoint(host[0].models_dir), count=n4, preset="4v", crossfade=True)
    prompt["5"]["inputs"]["grid"] = guidance.DEFAULT_GRID_SPEC
    result, windows = run_recorded(host, prompt)
    vae = result.outputs["1"][2]
    plan = plan_windows(n4, t4, "4v")
    assert [w.start for w in plan] == [0, 1] and len(windows) == 2
    scales = guidance.cfg_grid("official_4v", t4, v4).flatten()
    outputs = [window_views(vae, steps[-1], scales, v4) for steps in windows]
    rows = windows[1][0]["cond"]["cond_view"].reshape(t4, v4, 4, SIZE // 8, SIZE // 8)[0]
    expected_refs = vae.encode(outputs[0][:, 1]).float()
    assert (rows - expected_refs).abs().max() <= 1e-4 * max(1.0, expected_refs.abs().max().item())
    videos = multiview.split_views(result.outputs["5"][0], OrbitCameras.preset("4v"))
    expected = torch.zeros_like(videos[1:])
    for window, views in zip(plan, outputs):
        merge_window(expected, views, window, crossfade=True)
    assert (videos[1:] - expected).abs().max() <= 1e-4
    assert len(plan[1].overlap) == 11


@torch.inference_mode()
def test_padding_runs_full_windows_and_returns_the_input_length(host):
    result, windows = run_recorded(host, extend_prompt(host[1], count=T - 1, pad=True))
    images, report = result.outputs["5"]
    assert images.shape == ((V + 1) * (T - 1), SIZE, SIZE, 3) and len(windows) == 1
    assert "padded 4 → 5 frames" in report


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "4v"}, "the model samples 8 novel views but the cameras have 4"),
        ({"count": T - 1}, "at least 5 frames"),
        ({"count": 7}, r"frames 5-6 would never be generated.*trim the video to 5 frames.*pad_frames"),
    ],
)
def test_bad_layouts_fail_before_sampling(host, kwargs, message):
    wf.RecordModelNode.records = {}
    with pytest.raises(NodeFailed, match=message):
        host[0].run(extend_prompt(host[1], **kwargs))
    assert not wf.RecordModelNode.records.get("model")


def test_interrupt_stops_the_window_loop(host, monkeypatch):
    import comfy.model_management
    import latent_preview

    class InterruptingPreviewer:
        def decode_latent_to_preview_image(self, preview_format, x0):
            comfy.model_management.interrupt_current_processing(True)  # "cancel" pressed during window 0

    monkeypatch.setattr(latent_preview, "get_previewer", lambda device, latent_format: InterruptingPreviewer())
    wf.RecordModelNode.records = {}
    try:
        with pytest.raises(NodeFailed, match="execution_interrupted"):
            host[0].run(extend_prompt(host[1]))
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(wf.window_steps(wf.RecordModelNode.records["model"], STEPS)) == 1


def test_schema(host):
    info = host[0].nodes.NODE_CLASS_MAPPINGS["SV4D2ExtendVideo"].GET_NODE_INFO_V1()
    required = info["input"]["required"]
    assert list(required) == ["model", "clip_vision", "vae", "frames", "cameras", "steps", "seed", "grid",
                              "decoding_t", "crossfade", "pad_frames"]
    assert required["crossfade"][1]["default"] is False and required["pad_frames"][1]["default"] is False
    assert info["output"] == ["IMAGE", "STRING"]
    for name, value in required.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"
