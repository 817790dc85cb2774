"""ComfyUI V3 adapters. One module per concern; each exposes `NODES`, the node classes it defines.

Nodes hold no maths: they read inputs, call one `sv4d_lib` function and wrap the outputs.
"""
from __future__ import annotations

import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io


def node_modules() -> list[str]:
    """Names of the modules in this package that define nodes (every module with a `NODES` list)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


class SV4D2Extension(ComfyExtension):
    """Registers every node of the pack."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        nodes: list[type[io.ComfyNode]] = []
        for name in node_modules():
            module = importlib.import_module(f"{__name__}.{name}")
            nodes.extend(getattr(module, "NODES", []))
        return nodes
