"""SV4D2 Prepare Video: object frames → square model-ready frames on white (official preprocessing)."""
from __future__ import annotations

from comfy_api.latest import io

from sv4d_lib import video

from .common import interruptible_progress


class SV4D2PrepareVideo(io.ComfyNode):
    """Crops, pads and resizes the input video the way the official pipeline does before encoding."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2PrepareVideo",
            display_name="SV4D2 Prepare Video",
            category="SV4D2/video",
            description="Square frames with the object centred on white, at the model resolution.",
            inputs=[
                io.Image.Input(
                    "frames",
                    tooltip="The object video (RGB, RGBA or grey frames). Without a mask, RGBA uses its alpha and "
                    "RGB/grey assume a white background (pixels with mean ≤ 250/255 are the object).",
                ),
                io.Mask.Input(
                    "mask", optional=True,
                    tooltip="Optional foreground mask (1 = object), one per frame or one for all, e.g. from a "
                    "background-removal node. Note: Load Image's MASK is 1 = transparent; invert it first.",
                ),
                io.Int.Input(
                    "size", default=576, min=64, max=2048, step=8,
                    tooltip="Output side in pixels; SV4D 2.0 is trained at 576 (512 also works).",
                ),
                io.Combo.Input(
                    "mode", options=list(video.MODES), default="official",
                    tooltip="official: one crop for the whole video, centred on the image centre (assumes a centred "
                    "object). recentre: every frame's object is centred, at one common scale.",
                ),
                io.Float.Input(
                    "frame_ratio", default=0.9, min=0.1, max=1.0, step=0.01,
                    tooltip="Object size relative to the output frame (official default 0.9).",
                ),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="Square frames on white, size × size.")],
        )

    @classmethod
    def execute(cls, frames, size: int, mode: str, frame_ratio: float, mask=None) -> io.NodeOutput:
        on_frame = interruptible_progress(frames.shape[0])
        return io.NodeOutput(
            video.prepare_frames(frames, mask, size=size, frame_ratio=frame_ratio, mode=mode, on_frame=on_frame))


NODES = [SV4D2PrepareVideo]
