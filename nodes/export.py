"""SV4D2 Export 4D Mesh: fitted field → animated GLB (+ per-frame GLB/OBJ) in ComfyUI's output folder."""
from __future__ import annotations

import os
from io import BytesIO

import folder_paths
from comfy_api.latest import io

from sv4d_lib.nerf.export import DEFAULT_DENSITY_LEVEL, export_4d

from .types import Field4D

# ComfyUI ≥ 0.12 has a typed 3D-file socket (File3D); 0.3.75 only takes a STRING path in Preview3D.
HAS_FILE3D = hasattr(io, "File3DGLB")


class SV4D2Export4DMesh(io.ComfyNode):
    """Marching cubes in canonical space, vertices carried through the deformation per frame, one animated GLB."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        outputs = [io.String.Output(display_name="model_file",
                                    tooltip="GLB path relative to the output folder: connect to Preview 3D's "
                                    "model_file to play the animation.")]
        if HAS_FILE3D:
            outputs.append(io.File3DGLB.Output(display_name="glb", tooltip="The animated GLB as a 3D file."))
        return io.Schema(
            node_id="SV4D2Export4DMesh",
            display_name="SV4D2 Export 4D Mesh",
            category="SV4D2/4d",
            description="Animated GLB (morph target per frame + weights animation, vertex colours) and per-frame "
            "static GLB/OBJ files in <prefix>_frames/.",
            is_output_node=True,
            inputs=[
                Field4D.Input("field", tooltip="The fitted dynamic NeRF (SV4D2 Fit 4D)."),
                io.String.Input("filename_prefix", default="sv4d2/4d",
                                tooltip="Output sub-folder and file name prefix."),
                io.Int.Input("frames", default=0, min=0, max=4096,
                             tooltip="Frames (morph targets) spread over the clip (0: the field's frame count)."),
                io.Int.Input("mesh_resolution", default=128, min=16, max=512, step=8,
                             tooltip="Marching-cubes grid per axis (CPU: 128 takes seconds, 256 about a minute)."),
                io.Float.Input("fps", default=12.0, min=0.1, max=120.0, step=0.1, tooltip="Playback frame rate."),
                io.Float.Input("density_level", default=DEFAULT_DENSITY_LEVEL, min=0.01, max=10000.0, step=0.5,
                               tooltip="Density of the extracted surface; lower grows the mesh, higher shrinks it."),
            ],
            outputs=outputs,
        )

    @classmethod
    def execute(cls, field, filename_prefix: str, frames: int, mesh_resolution: int, fps: float,
                density_level: float) -> io.NodeOutput:
        output_dir = folder_paths.get_output_directory()
        folder, name, counter, _, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        result = export_4d(field, folder, f"{name}_{counter:05}_", frames or None, mesh_resolution, density_level,
                           fps)
        relative = os.path.relpath(result.animated_glb, output_dir).replace(os.sep, "/")
        values = [relative]
        if HAS_FILE3D:
            from comfy_api.latest import Types

            values.append(Types.File3D(BytesIO(result.animated_glb.read_bytes()), file_format="glb"))
        return io.NodeOutput(*values)


NODES = [SV4D2Export4DMesh]
