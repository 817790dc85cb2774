"""SV4D 2.0 for ComfyUI: monocular video → multi-view videos → animated 4D asset.

ComfyUI V3 pack. Importing this module is cheap: the nodes (and torch-heavy code) load when ComfyUI
calls `comfy_entrypoint`.
"""
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: returns the extension that lists every SV4D2 node."""
    import os
    import sys

    # The nodes import the host-independent library as `sv4d_lib`; append (never prepend) the pack folder so
    # ComfyUI's own top-level modules (e.g. its `nodes.py`) always win.
    pack_dir = os.path.dirname(os.path.abspath(__file__))
    if pack_dir not in sys.path:
        sys.path.append(pack_dir)
    from .nodes import SV4D2Extension

    return SV4D2Extension()
