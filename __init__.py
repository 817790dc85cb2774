"""SV4D 2.0 for ComfyUI: monocular video → multi-view videos → animated 4D asset.

ComfyUI V3 pack. Importing this module is cheap: the nodes (and torch-heavy code) load when ComfyUI
calls `comfy_entrypoint`.
"""
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: returns the extension that lists every SV4D2 node."""
    from .nodes import SV4D2Extension

    return SV4D2Extension()
