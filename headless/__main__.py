"""`python -m headless WORKFLOW.json --output DIR [--set "Title.input=value"]...` — see headless/__init__.py."""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from .convert import WorkflowError, apply_overrides, is_api_prompt, read_workflow, ui_to_api
from .server import ComfyServer, PromptRejected, find_comfyui


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m headless", description=__doc__)
    parser.add_argument("workflow", type=Path, help="editor-format workflow JSON (API-format prompts work too)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder that receives the outputs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TITLE.INPUT=VALUE",
                        help="override a widget value (node title or #id); repeatable; VALUE is JSON or text")
    parser.add_argument("--comfyui", help="ComfyUI folder (default: $COMFYUI_DIR, ./.host/ComfyUI, or the ComfyUI "
                                          "this pack is installed in)")
    parser.add_argument("--extra-model-paths", type=Path, help="extra_model_paths.yaml for the server")
    parser.add_argument("--input-dir", type=Path, help="ComfyUI input folder (for Load Image/Video nodes)")
    parser.add_argument("--gpu", action="store_true", help="do not pass --cpu even if CUDA looks unavailable")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the run")
    return parser.parse_args(argv)


class Progress:
    """Prints ComfyUI's websocket events as terminal progress lines."""

    def __init__(self, prompt: dict):
        self.prompt = prompt
        self.last = None

    def title(self, node_id) -> str:
        node = self.prompt.get(str(node_id), {})
        return f"#{node_id} {node.get('_meta', {}).get('title', node.get('class_type', '?'))}"

    def __call__(self, message: dict) -> None:
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "executing" and data.get("node") is not None:
            self._line(f"running {self.title(data['node'])}")
        elif kind == "progress":
            value, total = data.get("value", 0), data.get("max", 0)
            if total and (value == total or value * 10 // total != (self.last or 0)):
                self._line(f"  {self.title(data.get('node'))}: {value}/{total}")
                self.last = value * 10 // total
        elif kind == "execution_cached" and data.get("nodes"):
            self._line(f"cached: {', '.join(self.title(n) for n in data['nodes'])}")

    @staticmethod
    def _line(text: str) -> None:
        print(text, flush=True)


def collect_files(outputs: dict) -> list[str]:
    """Relative paths of the files that the run's UI outputs mention (text shown in a node is not a file)."""
    files = []
    for node_output in outputs.values():
        for key, items in node_output.items():
            for item in items if isinstance(items, list) and key != "text" else []:
                if isinstance(item, dict) and "filename" in item:
                    files.append(str(Path(item.get("subfolder") or "") / item["filename"]))
                elif isinstance(item, str) and item:
                    files.append(item)
    return files


def collect_texts(outputs: dict, titles: Progress) -> list[tuple[str, str]]:
    """(node title, text) for every text a node shows in the UI (Preview Any, scores): what a user reads there."""
    return [(titles.title(node_id), str(text)) for node_id, node_output in outputs.items()
            for text in node_output.get("text") or [] if isinstance(node_output.get("text"), list)]


def run(args: argparse.Namespace) -> int:
    try:
        data = read_workflow(args.workflow)
    except WorkflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        comfy_dir = find_comfyui(args.comfyui)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=args.output))
    try:
        with ComfyServer(comfy_dir, staging, extra_model_paths=args.extra_model_paths, input_dir=args.input_dir,
                         cpu=False if args.gpu else None) as server:
            object_info = server.object_info()
            workflow = None if is_api_prompt(data) else data
            prompt = data if workflow is None else ui_to_api(data, object_info)
            apply_overrides(prompt, args.overrides, object_info)
            client_id = uuid.uuid4().hex
            events = server.events(client_id)
            try:
                prompt_id = server.queue(prompt, client_id=client_id, workflow=workflow)
                print(f"queued {args.workflow.name} ({len(prompt)} nodes) on ComfyUI at {comfy_dir}", flush=True)
                entry = server.wait(prompt_id, timeout=args.timeout, events=events, on_message=Progress(prompt))
            finally:
                events.close()
            status = entry.get("status", {})
            if status.get("status_str") != "success":
                print(format_failure(status, prompt), file=sys.stderr)
                return 1
        for item in staging.iterdir():
            target = args.output / item.name
            if target.is_dir() and item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.move(str(item), target)
        outputs = entry.get("outputs", {})
        files = collect_files(outputs)
        print(f"done: {len(files)} output file(s) in {args.output}")
        for name in files:
            print(f"  {name}")
        for title, text in collect_texts(outputs, Progress(prompt)):
            print(f"{title} shows: {text}")
        return 0
    except (WorkflowError, PromptRejected) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError) as error:
        print(f"error: ComfyUI could not run: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def format_failure(status: dict, prompt: dict) -> str:
    """The failing node's error from a /history status, in a few lines."""
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            node = data.get("node_id")
            title = prompt.get(str(node), {}).get("_meta", {}).get("title", data.get("node_type"))
            trace = "".join(data.get("traceback") or [])[-1500:]
            return (f"error in node #{node} ({title}, {data.get('node_type')}): {data.get('exception_type')}: "
                    f"{data.get('exception_message')}\n{trace}")
        if kind == "execution_interrupted":
            return f"interrupted at node #{data.get('node_id')}"
    return f"run failed: {status}"


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
