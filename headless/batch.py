"""`python -m headless.batch WORKFLOW.json --inputs DIR|GLOB|CSV --set "Load Video.file={input}" --output OUT
[--ray ADDRESS | --local N]` — one run of an editor workflow per input, on a Ray cluster or on N local workers.

Each job writes `OUT/<name>/` (its outputs and `_job.json`) in one rename; `OUT/manifest.jsonl` logs every job's
input, status, outputs, timings, worker and error. Rerunning the same command resumes: complete jobs are skipped,
failed and missing ones run again. Exit status: 0 when every job is done or skipped, 1 when any failed, 2 when
the batch cannot start. `--set` values may use {input} (the input's absolute path), {name} (the job's folder
name) and, with a CSV of inputs, {column} for any column. See docs/scale.md.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

from .batch_jobs import BatchError, Job, completed, find_inputs, make_jobs
from .batch_worker import WORK
from .convert import WorkflowError, read_workflow
from .server import find_comfyui

MANIFEST = "manifest.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m headless.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, help="editor-format workflow JSON (API-format prompts work too)")
    parser.add_argument("--inputs", required=True, help="a folder (its files), a glob ('clips/**/*.mp4') or a CSV "
                                                        "file with an 'input' column (and optional 'name', ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TITLE.INPUT=VALUE",
                        help="override a widget value per job, e.g. 'Load Video.file={input}'; repeatable")
    parser.add_argument("--output", "-o", type=Path, required=True,
                        help="results folder (on a cluster: shared storage mounted at the same path on every node)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--ray", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS ('auto', 'HOST:6379')")
    where.add_argument("--local", type=int, metavar="N", help="run N worker processes here (default 1)")
    parser.add_argument("--workers", type=int, help="Ray: number of workers (default: one per GPU of the "
                                                    "cluster, or one per node without GPUs)")
    parser.add_argument("--gpus-per-worker", type=float, help="Ray: GPUs per worker; 0.5 packs two workers on a "
                                                              "GPU (default 1 with GPUs, else 0)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="Ray: CPUs per worker (default 1)")
    parser.add_argument("--job-timeout", type=float, default=7200.0, help="seconds one job may run (default 7200)")
    parser.add_argument("--retries", type=int, default=2, help="times a job is retried after its worker, ComfyUI "
                                                               "process or node was lost (default 2)")
    parser.add_argument("--comfyui", help="ComfyUI folder on every worker (default: $COMFYUI_DIR, ./.host/ComfyUI "
                                          "or the ComfyUI this pack is installed in)")
    parser.add_argument("--extra-model-paths", type=Path, help="extra_model_paths.yaml for every worker")
    parser.add_argument("--input-dir", type=Path, help="ComfyUI input folder for the workflow's other loaders")
    args = parser.parse_args(argv)
    if args.local is not None and args.local < 1:
        parser.error("--local needs N >= 1")
    return args


class Ledger:
    """The manifest (one JSON line per event), the progress bar over jobs and the final table."""

    def __init__(self, output: Path, total: int):
        self.path = output / MANIFEST
        self.handle = open(self.path, "a")
        self.lock = threading.Lock()
        self.rows: dict[str, dict] = {}
        self.bar = tqdm(total=total, unit="job", file=sys.stderr, dynamic_ncols=True, mininterval=0)

    def started(self, job: Job, worker: dict) -> None:
        self._write({"job": job.name, "input": job.input, "status": "running", "worker": worker})

    def finished(self, job: Job, record: dict) -> None:
        outputs = [f"{job.name}/{name}" for name in record.get("outputs", [])] if record["status"] != "failed" else []
        entry = {**record, "job": job.name, "input": job.input, "outputs": outputs}
        with self.lock:
            self.rows[job.name] = entry
            self.bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in self.counts().items()), refresh=False)
            self.bar.update(1)
            if entry["status"] == "failed":
                reason = entry.get("error", "").split("\n")[0]
                self.bar.write(f"failed {job.name}: {reason}", file=sys.stderr)
        self._write(entry)

    def _write(self, entry: dict) -> None:
        with self.lock:
            self.handle.write(json.dumps({"time": round(time.time(), 3), **entry}) + "\n")
            self.handle.flush()

    def close(self) -> None:
        self.bar.close()
        self.handle.close()

    def counts(self) -> dict[str, int]:
        return {s: sum(r["status"] == s for r in self.rows.values()) for s in ("done", "failed", "skipped")}

    def table(self) -> str:
        lines = [f"{'job':24} {'status':8} {'seconds':>8} {'outputs':>7}  reason / where"]
        for name, row in self.rows.items():
            where = (row.get("error") or "").split("\n")[0] or row.get("note") or _where(row.get("worker"))
            seconds = f"{row['seconds']:.1f}" if isinstance(row.get("seconds"), (int, float)) else "-"
            lines.append(f"{name:24} {row['status']:8} {seconds:>8} {len(row['outputs']):>7}  "
                         f"{' '.join(str(where).split())[:300]}")
        counts = self.counts()
        lines.append(f"{len(self.rows)} jobs: {counts['done']} done, {counts['failed']} failed, "
                     f"{counts['skipped']} skipped; manifest {self.path}")
        return "\n".join(lines)


def _where(worker: dict | None) -> str:
    return f"node {str(worker.get('node', '?'))[:12]} pid {worker.get('pid')}" if worker else ""


def plan(output: Path, jobs: list[Job], ledger: Ledger) -> list[Job]:
    """Jobs still to run; complete ones are logged as skipped, conflicting folders as failed (never overwritten)."""
    todo = []
    for job in jobs:
        try:
            record = completed(output, job)
        except BatchError as error:
            ledger.finished(job, {"status": "failed", "error": str(error)})
            continue
        if record is None:
            todo.append(job)
        else:
            ledger.finished(job, {**record, "status": "skipped", "note": "complete from an earlier run"})
    return todo


def run(args: argparse.Namespace) -> int:
    try:
        workflow = read_workflow(args.workflow)
    except WorkflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        jobs = make_jobs(workflow, find_inputs(args.inputs), args.overrides)
    except BatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    with open(output / ".batch.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(f"error: another batch is writing to {output}; wait for it or choose another --output",
                  file=sys.stderr)
            return 2
        shutil.rmtree(output / WORK, ignore_errors=True)  # leftovers of workers lost in an earlier run
        ledger = Ledger(output, len(jobs))
        try:
            todo = plan(output, jobs, ledger)
            if todo:
                _dispatch(args, workflow, output, todo, ledger)
        except (WorkflowError, BatchError, RuntimeError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            ledger.close()
            shutil.rmtree(output / WORK, ignore_errors=True)
    print(ledger.table())
    return 1 if ledger.counts()["failed"] else 0


def _dispatch(args: argparse.Namespace, workflow: dict, output: Path, todo: list[Job], ledger: Ledger) -> None:
    # Workers get this machine's ComfyUI path (same path on every node) unless --comfyui or COMFYUI_DIR says.
    comfyui = args.comfyui or os.environ.get("COMFYUI_DIR") or str(find_comfyui())
    config = {"workflow": workflow, "output": str(output), "comfyui": comfyui,
              "extra_model_paths": str(args.extra_model_paths.resolve()) if args.extra_model_paths else None,
              "input_dir": str(args.input_dir.resolve()) if args.input_dir else None,
              "job_timeout": args.job_timeout, "restarts": args.retries}
    probe = list(todo[0].overrides)
    if args.ray:
        from .batch_ray import run_ray

        run_ray(todo, config, args.ray, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                cpus_per_worker=args.cpus_per_worker, retries=args.retries, probe_overrides=probe,
                on_start=ledger.started, on_record=ledger.finished)
    else:
        from .batch_local import run_local

        run_local(todo, config, args.local or 1, probe, on_start=ledger.started, on_record=ledger.finished)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
