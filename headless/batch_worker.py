"""One batch worker: a ComfyUI server kept alive across jobs (models stay loaded) that runs one job at a time.

The same class runs inside a Ray actor (headless/batch_ray.py) and in a thread of `--local N`
(headless/batch_local.py); it never imports Ray. ComfyUI writes into a private work folder inside OUT; a finished
job's folder is renamed to `OUT/<job name>` in one step, so a lost worker leaves no half job behind and a job
that another attempt already finished is never written twice.
"""
from __future__ import annotations

import copy
import http.client
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from .__main__ import collect_files, format_failure
from .batch_jobs import JOB_FILE, BatchError, Job, completed, write_json_atomic
from .convert import WorkflowError, apply_overrides, is_api_prompt, ui_to_api
from .server import ComfyServer, PromptRejected, find_comfyui

WORK = ".work"  # OUT/.work/<worker>: ComfyUI's output folder, emptied before each job
SERVER_LOST = (ConnectionError, http.client.HTTPException, OSError)


class BatchWorker:
    """Runs jobs of one workflow on one ComfyUI server; `run(job)` returns the job's record and never raises for a
    job's own failure (bad input, node error, timeout), only restarts ComfyUI when its process died."""

    def __init__(self, workflow: dict, output: str, *, comfyui: str | None = None,
                 extra_model_paths: str | None = None, input_dir: str | None = None, cpu: bool | None = None,
                 cuda_device: int | None = None, job_timeout: float = 7200.0, restarts: int = 2):
        self.workflow, self.output = workflow, Path(output)
        self.comfy_dir = find_comfyui(comfyui)
        self.extra_model_paths, self.input_dir, self.cpu = extra_model_paths, input_dir, cpu
        self.cuda_device, self.job_timeout, self.restarts = cuda_device, job_timeout, restarts
        self.work = self.output / WORK / uuid.uuid4().hex[:12]
        self.temp = self.work.with_suffix(".temp")  # ComfyUI's temp folder; the driver clears OUT/.work at the end
        self.server: ComfyServer | None = None
        self.object_info: dict = {}
        self.template: dict = {}

    def start(self, probe_overrides: list[str] = ()) -> dict:
        """Start ComfyUI and convert the workflow once; `probe_overrides` (placeholders filled) are checked against
        the graph so a wrong title or input fails the batch before any job. Returns `info()`."""
        self._ensure_server()
        apply_overrides(copy.deepcopy(self.template), list(probe_overrides), self.object_info)
        return self.info()

    def info(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(),
                "comfyui_pid": self.server.process.pid if self.server and self.server.process else None}

    def _ensure_server(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            return
        self._stop_server()
        self.work.mkdir(parents=True, exist_ok=True)
        self.temp.mkdir(parents=True, exist_ok=True)
        extra_args = ["--temp-directory", str(self.temp)]
        if self.cuda_device is not None:
            extra_args += ["--cuda-device", str(self.cuda_device)]
        server = ComfyServer(self.comfy_dir, self.work, extra_model_paths=self.extra_model_paths,
                             input_dir=self.input_dir, cpu=self.cpu, extra_args=tuple(extra_args))
        try:
            server.start()
        except (RuntimeError, TimeoutError):
            server.log_path.unlink(missing_ok=True)
            raise
        self.server = server
        if not self.template:
            self.object_info = server.object_info()
            self.template = self.workflow if is_api_prompt(self.workflow) else ui_to_api(self.workflow,
                                                                                        self.object_info)

    def _server_died(self, grace: float = 10.0) -> bool:
        """Whether ComfyUI's process ended; its sockets close a moment before it can be reaped, so wait a little."""
        try:
            self.server.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.log_path.unlink(missing_ok=True)
            self.server = None

    def close(self) -> None:
        self._stop_server()
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.temp, ignore_errors=True)

    def run(self, job: Job) -> dict:
        """Run one job and return its record: status "done" (outputs listed) or "failed" (error says why)."""
        started, clock = time.time(), time.monotonic()
        record = {"job": job.name, "input": job.input, "fingerprint": job.fingerprint, "started": started}
        try:
            previous = completed(self.output, job)
        except BatchError as error:
            return {**record, "status": "failed", "error": str(error), "seconds": 0.0, "worker": self.info()}
        if previous is not None:  # an earlier attempt finished it before its worker was lost
            return {**previous, "note": "already complete", "worker": self.info()}
        error, attempts = "", 0
        while attempts <= self.restarts:
            attempts += 1
            try:
                self._ensure_server()
            except (RuntimeError, TimeoutError) as failure:
                outcome = {"status": "failed", "error": f"ComfyUI could not start: {failure}"}
            else:
                try:
                    outcome = self._execute(job)
                except SERVER_LOST as lost:
                    if not self._server_died():
                        raise
                    error = f"ComfyUI exited during the job ({type(lost).__name__}: {lost})"
                    self._stop_server()
                    continue
            if error:
                record["note"] = f"{error}; redone on a restarted ComfyUI"
            return {**record, **outcome, "attempts": attempts, "seconds": round(time.monotonic() - clock, 2),
                    "worker": self.info()}
        return {**record, "status": "failed", "error": f"{error}; gave up after {attempts} attempts",
                "attempts": attempts, "seconds": round(time.monotonic() - clock, 2), "worker": self.info()}

    def _execute(self, job: Job) -> dict:
        """Queue the job's prompt, wait, and commit the work folder as `OUT/<job name>`."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        prompt = copy.deepcopy(self.template)
        try:
            apply_overrides(prompt, list(job.overrides), self.object_info)
            prompt_id = self.server.queue(prompt, workflow=None if is_api_prompt(self.workflow) else self.workflow)
        except (WorkflowError, PromptRejected) as error:
            return {"status": "failed", "error": str(error)}
        try:
            entry = self.server.wait(prompt_id, timeout=self.job_timeout)
        except TimeoutError:
            self._stop_server()  # the only sure way to stop a stuck graph; the next job starts a fresh server
            return {"status": "failed", "error": f"timed out after {self.job_timeout:.0f} s (--job-timeout)"}
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            return {"status": "failed", "error": format_failure(status, prompt).strip()}
        return self._commit(job, collect_files(entry.get("outputs", {})))

    def _commit(self, job: Job, declared: list[str]) -> dict:
        files = sorted(str(p.relative_to(self.work)) for p in self.work.rglob("*") if p.is_file())
        empty = [name for name in files if (self.work / name).stat().st_size == 0]
        missing = sorted(set(declared) - set(files))
        if not files or empty or missing:
            problem = "wrote no files" if not files else f"left empty files {empty}" if empty else \
                f"reported files it did not write {missing}"
            return {"status": "failed", "error": f"the workflow {problem}; a job only counts with real outputs"}
        record = {"job": job.name, "input": job.input, "fingerprint": job.fingerprint, "status": "done",
                  "outputs": files}
        write_json_atomic(self.work / JOB_FILE, record)
        try:
            os.rename(self.work, self.output / job.name)
        except OSError:  # another attempt committed it first: keep that one, never two copies
            shutil.rmtree(self.work, ignore_errors=True)
            return {**completed(self.output, job), "note": "already complete"}
        finally:
            self.work.mkdir(parents=True, exist_ok=True)
        return record
