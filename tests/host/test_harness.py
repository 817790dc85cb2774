"""The in-process harness across ComfyUI versions: PromptServer with and without an asset manager, and
`caches.outputs.get` as a plain call (0.3.x) or a coroutine (newer core). The real 0.3.75 path is what every
`comfy_host` test runs; these pin the newer signatures, which CI cannot install."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from .inprocess import cached_output, make_prompt_server


class AssetManager:
    """Stands for newer core's asset manager (its server module imports the class)."""


class ServerWithLoop:
    def __init__(self, loop):
        self.loop = loop


class ServerWithAssets:
    def __init__(self, loop, asset_manager: AssetManager, *, routes=None):
        self.loop, self.asset_manager = loop, asset_manager


class ServerWithUnannotatedAssets:
    def __init__(self, loop, asset_manager):
        self.loop, self.asset_manager = loop, asset_manager


@pytest.fixture()
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_prompt_server_with_and_without_an_asset_manager(loop):
    old = make_prompt_server(SimpleNamespace(PromptServer=ServerWithLoop), loop)
    assert old.loop is loop
    for server_class in (ServerWithAssets, ServerWithUnannotatedAssets):
        new = make_prompt_server(SimpleNamespace(PromptServer=server_class, AssetManager=AssetManager), loop)
        assert new.loop is loop and isinstance(new.asset_manager, AssetManager)
    with pytest.raises(RuntimeError, match="no class known for its 'asset_manager' parameter"):
        make_prompt_server(SimpleNamespace(PromptServer=ServerWithUnannotatedAssets), loop)


def test_cached_outputs_read_sync_and_async(loop):
    entry = SimpleNamespace(outputs=[["image"]])

    async def get_async(node_id):
        return entry if node_id == "1" else None

    for get in (lambda node_id: entry if node_id == "1" else None, get_async):
        executor = SimpleNamespace(caches=SimpleNamespace(outputs=SimpleNamespace(get=get)))
        assert cached_output(executor, "1", loop) is entry
        assert cached_output(executor, "2", loop) is None
