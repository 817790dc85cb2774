"""Fixtures for batch runs: input clips, the tiny checkpoint, and a real two-node Ray cluster on loopback."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiny_checkpoint import tiny_checkpoint_name

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # loopback, but not "localhost", which Ray swaps for a routable IP


def require_ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed: pip install -r requirements-test.txt (or pip install 'sv4d2[ray]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """Four copies of the sample video and one file that is not a video."""
    folder = tmp_path_factory.mktemp("clips")
    for index in range(1, 5):
        shutil.copy(REPO / "assets" / "sample_object.mp4", folder / f"clip_{index}.mp4")
    (folder / "broken.mp4").write_text("this is not a video\n")
    return folder


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """extra_model_paths.yaml of a models folder holding the tiny 4-view checkpoint."""
    root = tmp_path_factory.mktemp("batch_models")
    tiny_checkpoint_name(root, "4v")
    config = root / "extra_model_paths.yaml"
    config.write_text(f"sv4d2_batch:\n  base_path: {root}\n  checkpoints: checkpoints\n")
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen
    worker: subprocess.Popen  # `ray start --block` of the worker node, leader of the node's process group

    def on_worker_node(self, pid: int) -> bool:
        """Whether a Ray worker process belongs to the worker node (its parent, the raylet, is in that group)."""
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return os.getpgid(parent) == self.worker.pid


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"`ray start` did not report {text!r} within {timeout:.0f} s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head` and a second `ray start --address=...` worker node, each its own process group.

    The head has 2 CPUs, so a worker lost with its node can restart there; one CPU per worker node."""
    require_ray()
    logs = tmp_path_factory.mktemp("ray_logs")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    port = free_port()
    common = ["--disable-usage-stats", "--block"]
    head = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", f"--node-ip-address={HEAD_IP}",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", *common],
                            stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        _wait_for_line(logs / "head.log", "Ray runtime started", head, timeout=120)
        worker = subprocess.Popen([str(RAY), "start", f"--address={HEAD_IP}:{port}", f"--node-ip-address={WORKER_IP}",
                                   "--num-cpus=1", *common], stdout=open(logs / "worker.log", "w"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_line(logs / "worker.log", "Ray runtime started", worker, timeout=120)
        yield RayCluster(f"{HEAD_IP}:{port}", head, worker)
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=60)
        for process in (worker, head):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            if process is not None:
                process.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
