"""What the headless runner reports from a finished prompt's UI outputs: files written, and text nodes show."""
from __future__ import annotations

from headless.__main__ import Progress, collect_files, collect_texts

PROMPT = {"5": {"class_type": "SaveVideo", "_meta": {"title": "Save Preview Video"}},
          "7": {"class_type": "Preview3D", "_meta": {"title": "Preview 3D"}},
          "16": {"class_type": "PreviewAny", "_meta": {"title": "Show Held-out Score"}}}
# as core ComfyUI records them in /history: a saved file, Preview 3D's model path, Preview Any's text
OUTPUTS = {"5": {"images": [{"filename": "real_scene_preview_00001_.mp4", "subfolder": "sv4d2", "type": "output"}]},
           "7": {"result": ["sv4d2/real_scene_00001_.glb", None]},
           "16": {"text": ["PSNR 21.40 dB, SSIM 0.8930 over 63 images"]}}


def test_text_a_node_shows_is_reported_as_text_not_as_a_file():
    assert collect_files(OUTPUTS) == ["sv4d2/real_scene_preview_00001_.mp4", "sv4d2/real_scene_00001_.glb"]
    assert collect_texts(OUTPUTS, Progress(PROMPT)) == [
        ("#16 Show Held-out Score", "PSNR 21.40 dB, SSIM 0.8930 over 63 images")]


def test_no_text_outputs_give_no_lines():
    assert collect_texts({"5": OUTPUTS["5"]}, Progress(PROMPT)) == []
