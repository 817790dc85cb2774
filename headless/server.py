"""A real ComfyUI server in a subprocess, and a small client for it (used by the runner and the tests)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent


def find_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    """ComfyUI folder: explicit, $COMFYUI_DIR, this repo's test host, or the ComfyUI that holds this pack."""
    candidates = [explicit, os.environ.get("COMFYUI_DIR"), REPO / ".host" / "ComfyUI", REPO.parent.parent]
    for candidate in candidates:
        if candidate and (Path(candidate) / "main.py").is_file() and (Path(candidate) / "comfy").is_dir():
            return Path(candidate).resolve()
    raise FileNotFoundError(
        "no ComfyUI found: pass --comfyui DIR, set COMFYUI_DIR, or build the test host with "
        "`bash scripts/bootstrap_host.sh`"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cuda_available(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import torch; print(int(torch.cuda.is_available()))"],
                           capture_output=True, text=True)
    return probe.stdout.strip() == "1"


class ComfyServer:
    """`python main.py` on 127.0.0.1 with its own output folder; use as a context manager."""

    def __init__(self, comfy_dir: Path, output_dir: Path, *, extra_model_paths: Path | None = None,
                 input_dir: Path | None = None, cpu: bool | None = None, python: str = sys.executable,
                 extra_args: tuple[str, ...] = (), startup_timeout: float = 300.0):
        # absolute now: the server runs in the ComfyUI folder, the caller's relative paths mean its own folder
        self.comfy_dir, self.output_dir = Path(comfy_dir).resolve(), Path(output_dir).resolve()
        extra_model_paths = extra_model_paths and Path(extra_model_paths).resolve()
        input_dir = input_dir and Path(input_dir).resolve()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="comfyui-", suffix=".log")[1])
        self._startup_timeout = startup_timeout
        cpu = (not cuda_available(python)) if cpu is None else cpu
        self.command = [python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
                        "--output-directory", str(self.output_dir), "--disable-auto-launch",
                        "--database-url", "sqlite:///:memory:", *extra_args]
        if cpu:
            self.command.append("--cpu")
        if extra_model_paths:
            self.command += ["--extra-model-paths-config", str(extra_model_paths)]
        if input_dir:
            self.command += ["--input-directory", str(input_dir)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ComfyServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(self.command, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up (code {self.process.returncode}):\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {self._startup_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict):
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            try:
                return {"http_status": error.code, **json.loads(body)}
            except json.JSONDecodeError:
                return {"http_status": error.code, "error": {"message": body}}

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self, prompt: dict, *, client_id: str | None = None, workflow: dict | None = None) -> str:
        """Queue a prompt; raises PromptRejected with ComfyUI's validation errors."""
        payload = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
        if workflow is not None:
            payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        reply = self.post("/prompt", payload)
        if "error" in reply or reply.get("node_errors"):
            raise PromptRejected(reply.get("error"), reply.get("node_errors") or {}, prompt)
        return reply["prompt_id"]

    def wait(self, prompt_id: str, *, timeout: float = 3600.0, events=None,
             on_message: Callable[[dict], None] | None = None) -> dict:
        """Wait until the prompt finishes and return its /history entry; feeds live messages from `events`
        (an `EventStream` opened before queueing) to `on_message`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if events is not None and on_message is not None:
                for message in events.drain(prompt_id, seconds=0.5):
                    on_message(message)
            else:
                time.sleep(0.2)
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                if events is not None and on_message is not None:
                    for message in events.drain(prompt_id, seconds=0.0):
                        on_message(message)
                return entry
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def events(self, client_id: str) -> "EventStream":
        """Open the websocket before queueing so no progress message is missed."""
        return EventStream(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}")


class EventStream:
    """ComfyUI's websocket messages (JSON only; binary preview frames are skipped)."""

    def __init__(self, url: str):
        import websocket  # websocket-client; only needed for live progress

        self._timeout_error = websocket.WebSocketTimeoutException
        self.ws = websocket.create_connection(url, timeout=10)

    def drain(self, prompt_id: str, seconds: float) -> list[dict]:
        messages, deadline = [], time.monotonic() + seconds
        while True:
            self.ws.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                raw = self.ws.recv()
            except self._timeout_error:
                return messages
            if isinstance(raw, str):
                message = json.loads(raw)
                if (message.get("data") or {}).get("prompt_id") in (None, prompt_id):
                    messages.append(message)

    def close(self) -> None:
        self.ws.close()


class PromptRejected(RuntimeError):
    """ComfyUI refused a prompt at validation; the message lists each node's problems."""

    def __init__(self, error: dict | None, node_errors: dict, prompt: dict):
        self.error, self.node_errors = error or {}, node_errors
        lines = [self.error.get("message", "prompt rejected") + (": " + self.error["details"] if self.error.get("details") else "")]
        for node_id, info in node_errors.items():
            title = prompt.get(node_id, {}).get("_meta", {}).get("title", info.get("class_type"))
            for err in info.get("errors", []):
                detail = err.get("details") or ""
                lines.append(f"  node {node_id} ({title}): {err.get('message')}{': ' + detail if detail else ''}")
        super().__init__("\n".join(lines))
