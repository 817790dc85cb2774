"""One workflow over many videos, on `--local 2` and on a real two-node Ray cluster on loopback: the 4-view example
workflow with the tiny checkpoint over four clips and one broken file, a worker killed mid-job (its ComfyUI
process locally, the whole worker node on Ray), then a rerun that must skip everything."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import pytest

from headless.batch_jobs import JOB_FILE

from .conftest import REPO, RayCluster

WORKFLOW = REPO / "example_workflows" / "SV4D 2.0 - 4 views.json"
SETTINGS = ["Load Video.file={input}", "Load Model.ckpt_name=checkpoints/sv4d2_tiny.safetensors",
            "Prepare Video.size=64", "Sample NVVS.steps=1"]
EXPECTED = {"sv4d2/4views_*_v*.mp4": 5, "sv4d2/4views_grid_*.png": 1}  # per job
GOOD = [f"clip_{index}" for index in range(1, 5)]
TIMEOUT = 480  # seconds for one whole batch on a busy 2-core machine


@dataclass
class Finished:
    backend: str
    out: Path
    command: list[str]
    result: subprocess.CompletedProcess
    records: list[dict]
    victim: dict  # the manifest's "running" record of the job whose worker was killed
    seconds: float


def batch_command(clips: Path | str, out: Path, models: Path, *where: str) -> list[str]:
    command = [sys.executable, "-m", "headless.batch", str(WORKFLOW), "--inputs", str(clips), "--output", str(out),
               "--extra-model-paths", str(models), *where]
    for setting in SETTINGS:
        command += ["--set", setting]
    return command


def read_manifest(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def final_records(records: list[dict]) -> dict[str, dict]:
    return {r["job"]: r for r in records if r["status"] != "running"}


def pick_victim(records: list[dict], on_target) -> dict | None:
    """A job running on a target worker that already finished another job (so both nodes provably worked)."""
    finished = final_records(records)
    for record in reversed(records):
        node = record["worker"].get("node") if record.get("worker") else None
        if record["status"] != "running" or record["job"] in finished or not on_target(record["worker"]):
            continue
        if any(r["status"] == "done" and r["worker"]["node"] == node for r in finished.values()):
            return record
    return None


def run_and_kill(command: list[str], out: Path, on_target, kill) -> tuple[subprocess.CompletedProcess, dict, float]:
    """Run the batch; once `pick_victim` finds a job, let it run 2 s, then `kill(record)` its worker."""
    started = time.monotonic()
    stdout, stderr = out.with_suffix(".stdout"), out.with_suffix(".stderr")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(stdout, "w") as so, open(stderr, "w") as se:
        process = subprocess.Popen(command, cwd=REPO, stdout=so, stderr=se, env=env)
    victim = None
    try:
        while victim is None and process.poll() is None and time.monotonic() - started < TIMEOUT:
            victim = pick_victim(read_manifest(out), on_target)
            time.sleep(0.3)
        if victim is not None:
            time.sleep(0.5)  # into the job, well before its outputs are written (a tiny job takes about 2 s)
            kill(victim)
        process.wait(timeout=max(TIMEOUT - (time.monotonic() - started), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = subprocess.CompletedProcess(command, process.returncode, stdout.read_text(), stderr.read_text())
    assert victim is not None, f"no job could be killed mid-run:\n{result.stderr[-3000:]}"
    return result, victim, time.monotonic() - started


@pytest.fixture(scope="module", params=["local", "ray"])
def finished(request, clips, models, tmp_path_factory) -> Finished:
    out = tmp_path_factory.mktemp(f"batch_{request.param}") / "out"
    if request.param == "local":
        command = batch_command(clips, out, models, "--local", "2")
        result, victim, seconds = run_and_kill(
            command, out, on_target=lambda worker: True,
            kill=lambda record: os.kill(record["worker"]["comfyui_pid"], signal.SIGKILL))
    else:
        cluster: RayCluster = request.getfixturevalue("ray_cluster")
        command = batch_command(clips, out, models, "--ray", cluster.address)
        on_worker_node: dict[int, bool] = {}

        def on_target(worker: dict) -> bool:
            if worker["pid"] not in on_worker_node:
                on_worker_node[worker["pid"]] = cluster.on_worker_node(worker["pid"])
            return on_worker_node[worker["pid"]]

        def kill_node(record: dict) -> None:
            """The node's Ray processes and the actor (its own group, with its ComfyUI) die at once."""
            actor_group = os.getpgid(record["worker"]["pid"])
            os.killpg(cluster.worker.pid, signal.SIGKILL)
            os.killpg(actor_group, signal.SIGKILL)

        result, victim, seconds = run_and_kill(command, out, on_target, kill_node)
    print(f"\n{request.param}: batch with a killed worker took {seconds:.0f} s\n{result.stdout}")
    return Finished(request.param, out, command, result, read_manifest(out), victim, seconds)


def test_every_job_is_done_exactly_once_with_complete_outputs(finished):
    final = final_records(finished.records)
    for name in GOOD:
        record = final[name]
        assert record["status"] == "done", record
        assert [r["job"] for r in finished.records if r["status"] == "done"].count(name) == 1
        folder = finished.out / name
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert files == sorted([JOB_FILE, *(o.split("/", 1)[1] for o in record["outputs"])])
        for pattern, count in EXPECTED.items():
            found = sorted(folder.glob(pattern))
            assert len(found) == count, (name, pattern, files)
        for video in folder.glob("sv4d2/*.mp4"):
            assert iio.imread(video).shape == (12, 64, 64, 3), video
    leftovers = sorted(p.name for p in finished.out.iterdir())
    assert leftovers == sorted([*GOOD, ".batch.lock", "manifest.jsonl"]), "staging or half jobs left behind"
    if finished.backend == "ray":
        nodes = {final[name]["worker"]["node"] for name in GOOD}
        assert len(nodes) == 2, f"jobs ran on {nodes}, not on both nodes"


def test_the_job_of_the_killed_worker_is_redone_once(finished):
    killed = finished.victim["worker"]
    victim = final_records(finished.records)[finished.victim["job"]]
    assert victim["status"] == "done" and victim["attempts"] >= 2, victim
    if finished.backend == "ray":  # redone by Ray's restarted actor or by the driver on another one
        assert victim["worker"]["pid"] != killed["pid"]
        assert f"lost worker pid {killed['pid']} on node {killed['node'][:12]}" in victim["note"]
    else:
        assert victim["worker"]["comfyui_pid"] != killed["comfyui_pid"]
        assert "ComfyUI exited during the job" in victim["note"] and "redone on a restarted ComfyUI" in victim["note"]


def test_a_broken_input_fails_only_its_own_job_with_the_reason(finished):
    assert finished.result.returncode == 1, finished.result.stderr[-3000:]
    broken = final_records(finished.records)["broken"]
    assert broken["status"] == "failed" and broken["outputs"] == []
    assert "error in node #3 (Video Frames, GetVideoComponents)" in broken["error"]
    assert "InvalidDataError" in broken["error"] and "broken.mp4" in broken["error"]
    assert not (finished.out / "broken").exists()
    table = finished.result.stdout
    assert "5 jobs: 4 done, 1 failed, 0 skipped" in table
    assert any(line.startswith("broken ") and " failed " in line and "GetVideoComponents" in line
               for line in table.splitlines())


def test_a_rerun_skips_every_complete_job_and_writes_nothing(finished, clips, models):
    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in finished.out.rglob("*")
                if p.is_file() and p.name != "manifest.jsonl"}

    before = snapshot()
    where = finished.command[finished.command.index("--extra-model-paths") + 2:][:2]  # --local 2 / --ray ADDRESS
    started = time.monotonic()
    result = subprocess.run(batch_command(f"{clips}/clip_*.mp4", finished.out, models, *where), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 jobs: 0 done, 0 failed, 4 skipped" in result.stdout
    rerun = read_manifest(finished.out)[len(finished.records):]
    assert sorted(r["job"] for r in rerun) == GOOD and {r["status"] for r in rerun} == {"skipped"}
    assert snapshot() == before
    assert time.monotonic() - started < 60  # no ComfyUI was started
