"""One real ComfyUI inside the test process (ComfyUI keeps global state, so one per pytest session)."""
from __future__ import annotations

import asyncio
import inspect
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MODEL_FOLDERS = ("checkpoints", "diffusion_models", "vae", "clip_vision")
PACK_MODULE = "sv4d2"  # the pack's folder name under custom_nodes (scripts/bootstrap_host.sh)


def pack_module(name: str):
    """A module of this pack as ComfyUI imported it (under a path-derived package name; `nodes` alone would be
    ComfyUI's own nodes.py), e.g. `pack_module("nodes.comfy_model")`."""
    import importlib

    pack_init = str(Path(__file__).resolve().parents[2] / "__init__.py")
    package = next(key for key, module in list(sys.modules.items())
                   if getattr(module, "__file__", None) and str(Path(module.__file__).resolve()) == pack_init
                   and key.endswith(PACK_MODULE))
    return importlib.import_module(f"{package}.{name}")


class NodeFailed(AssertionError):
    """A prompt failed validation or execution; the message carries ComfyUI's node errors."""


@dataclass
class RunResult:
    ui: dict
    outputs: dict = field(repr=False)  # node id -> list of the node's output values

    def output(self, node_id: str | int, index: int = 0):
        return self.outputs[str(node_id)][index]


class InProcessComfy:
    """ComfyUI started in-process with `--cpu`, this pack loaded, models/outputs in a temporary root."""

    def __init__(self, comfy_dir: Path, root: Path):
        self.comfy_dir, self.root = comfy_dir, root
        self.models_dir = root / "models"
        self.output_dir, self.input_dir, self.temp_dir = root / "output", root / "input", root / "temp"
        for path in (self.output_dir, self.input_dir, self.temp_dir, *(self.models_dir / f for f in MODEL_FOLDERS)):
            path.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(comfy_dir))
        from comfy.cli_args import args

        args.cpu = True
        import folder_paths
        import utils.extra_config  # noqa: F401  (as main.py: ComfyUI's `utils` package before nodes.py shadows it)

        folder_paths.set_output_directory(str(self.output_dir))
        folder_paths.set_input_directory(str(self.input_dir))
        folder_paths.set_temp_directory(str(self.temp_dir))
        for name in MODEL_FOLDERS:
            folder_paths.add_model_folder_path(name, str(self.models_dir / name), is_default=True)
        import execution
        import nodes
        import server

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = make_prompt_server(server, self.loop)
        self.loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.execution, self.nodes = execution, nodes
        if PACK_MODULE not in nodes.LOADED_MODULE_DIRS:
            raise RuntimeError("the SV4D2 pack did not load into ComfyUI (see the log above for its import error)")

    def validate(self, prompt: dict) -> tuple[bool, dict, dict]:
        """ComfyUI's own validation: (ok, error, node_errors)."""
        ok, error, _, node_errors = self.loop.run_until_complete(
            self.execution.validate_prompt(uuid.uuid4().hex, prompt, None)
        )
        return ok, error, node_errors

    def run(self, prompt: dict) -> RunResult:
        """Validate and execute an API prompt; raises NodeFailed with the node's error."""
        prompt_id = uuid.uuid4().hex
        ok, error, outputs, node_errors = self.loop.run_until_complete(
            self.execution.validate_prompt(prompt_id, prompt, None)
        )
        if not ok or node_errors:
            raise NodeFailed(f"prompt rejected: {error}\nnode_errors: {node_errors}")
        executor = self.execution.PromptExecutor(
            self.server, cache_type=self.execution.CacheType.CLASSIC,
            cache_args={"lru": 0, "ram": 0, "ram_inactive": 0},
        )
        executor.execute(prompt, prompt_id, {}, outputs)
        if not executor.success:
            for event, data in executor.status_messages:
                if event in ("execution_error", "execution_interrupted"):
                    raise NodeFailed(
                        f"{event} in node {data.get('node_id')} ({data.get('node_type')}): "
                        f"{data.get('exception_type')}: {data.get('exception_message')}\n"
                        + "".join(data.get("traceback") or [])
                    )
            raise NodeFailed(f"execution failed: {executor.status_messages}")
        node_outputs = {}
        for node_id in prompt:
            entry = cached_output(executor, node_id, self.loop)
            if entry is not None:
                node_outputs[node_id] = [values[0] if len(values) == 1 else values for values in entry.outputs]
        return RunResult(ui=executor.history_result["outputs"], outputs=node_outputs)


def make_prompt_server(server_module, loop: asyncio.AbstractEventLoop):
    """`PromptServer(loop)` (0.3.x), or `PromptServer(loop, asset_manager)` (newer core): each further required
    parameter gets a new instance of its annotated class, or of the server module's own `*AssetManager` class."""
    extra = []
    for parameter in list(inspect.signature(server_module.PromptServer.__init__).parameters.values())[2:]:
        if parameter.default is not parameter.empty or parameter.kind in (parameter.VAR_POSITIONAL,
                                                                          parameter.VAR_KEYWORD):
            continue
        annotation = None if parameter.annotation is parameter.empty else parameter.annotation
        if isinstance(annotation, str):
            annotation = getattr(server_module, annotation.rpartition(".")[2], None)
        if not isinstance(annotation, type):
            annotation = next((v for k, v in vars(server_module).items()
                               if isinstance(v, type) and k.lower().endswith("assetmanager")), None)
        if annotation is None:
            raise RuntimeError(f"cannot build ComfyUI's PromptServer: no class known for its {parameter.name!r} "
                               "parameter; update tests/host/inprocess.py for this ComfyUI version")
        extra.append(annotation())
    return server_module.PromptServer(loop, *extra)


def cached_output(executor, node_id: str, loop: asyncio.AbstractEventLoop):
    """A node's cached outputs; `caches.outputs.get` is a plain call in 0.3.x and a coroutine in newer core."""
    entry = executor.caches.outputs.get(node_id)
    return loop.run_until_complete(entry) if inspect.isawaitable(entry) else entry
