"""SV4D 2.0 for ComfyUI: monocular video → multi-view videos → animated 4D asset.

ComfyUI V3 pack. Importing this module is cheap: the nodes (and torch-heavy code) load when ComfyUI
calls `comfy_entrypoint`, which also puts the example workflows' input files into ComfyUI's input folder.
"""
import logging
import os
import shutil
import tempfile

WEB_DIRECTORY = "./web"
PACK_DIR = os.path.dirname(os.path.abspath(__file__))
# The files the example workflows load (assets/README.md says what they are and under which licence).
SAMPLE_INPUTS = ("sample_object.mp4", "sv4d2_maidroid_views.png", "sv4d2_maidroid_heldout.png")


def install_sample_inputs(input_dir: str) -> list[str]:
    """Copy each sample input that `input_dir` lacks (a user's file of the same name is never replaced).

    Returns the names copied. Each copy is written under a temporary name and renamed, so a half-written file
    never appears in the Load Image/Video lists.
    """
    copied = []
    for name in SAMPLE_INPUTS:
        target = os.path.join(input_dir, name)
        if os.path.exists(target):
            continue
        os.makedirs(input_dir, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=input_dir)
        os.close(handle)
        try:
            shutil.copyfile(os.path.join(PACK_DIR, "assets", name), temporary)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        copied.append(name)
    return copied


async def comfy_entrypoint():
    """ComfyUI V3 entry point: returns the extension that lists every SV4D2 node."""
    import sys

    import folder_paths

    try:
        copied = install_sample_inputs(folder_paths.get_input_directory())
        if copied:
            logging.info("SV4D2: copied the example inputs %s into ComfyUI's input folder", ", ".join(copied))
    except OSError as error:  # a read-only input folder must not stop the nodes from loading
        logging.warning("SV4D2: could not copy the example inputs into ComfyUI's input folder (%s); copy them from "
                        "%s by hand to run the example workflows", error, os.path.join(PACK_DIR, "assets"))
    # The nodes import the host-independent library as `sv4d_lib`; append (never prepend) the pack folder so
    # ComfyUI's own top-level modules (e.g. its `nodes.py`) always win.
    if PACK_DIR not in sys.path:
        sys.path.append(PACK_DIR)
    from .nodes import SV4D2Extension

    return SV4D2Extension()
