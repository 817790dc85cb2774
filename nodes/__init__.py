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
    """Registers every node of the pack and the HTTP routes of its web editors."""

    async def on_load(self) -> None:
        """The web editors' routes on the running server (`register_routes` adds them once per server)."""
        from .guidance import register_routes

        register_routes()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        await self.on_load()  # ComfyUI 0.3.75 never calls on_load itself
        nodes: list[type[io.ComfyNode]] = []
        for name in node_modules():
            module = importlib.import_module(f"{__name__}.{name}")
            nodes.extend(getattr(module, "NODES", []))
        return nodes
