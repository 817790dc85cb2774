"""`--local N`: N ComfyUI worker processes on this machine, one per visible GPU (round robin) or on the CPU.

Each worker is a `BatchWorker` (one ComfyUI server subprocess) driven by its own thread; a worker whose ComfyUI
process dies restarts it and retries the job (see BatchWorker.run).
"""
from __future__ import annotations

import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable

from .batch_jobs import Job
from .batch_worker import BatchWorker


def visible_gpus() -> int:
    """CUDA devices torch sees here (asked in a subprocess so the driver never imports torch)."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                           capture_output=True, text=True)
    return int(probe.stdout.strip() or 0) if probe.returncode == 0 else 0


def run_local(jobs: list[Job], config: dict, workers: int, probe_overrides: list[str],
              on_start: Callable[[Job, dict], None], on_record: Callable[[Job, dict], None]) -> None:
    """Run `jobs` on `workers` local ComfyUI servers; `on_start`/`on_record` report each job (any thread)."""
    gpus = visible_gpus()
    pool = [BatchWorker(**config, cpu=None if gpus else True, cuda_device=(i % gpus) if gpus else None)
            for i in range(min(workers, len(jobs)))]
    idle: queue.Queue[tuple[BatchWorker, dict]] = queue.Queue()

    def run_one(job: Job) -> dict:
        worker, info = idle.get()
        try:
            on_start(job, info)
            record = worker.run(job)
        except Exception as error:  # a bug or an unreadable OUT: this job fails, the batch goes on
            record = {"job": job.name, "input": job.input, "status": "failed",
                      "error": f"{type(error).__name__}: {error}"}
        info = worker.info() | {"node": info["node"]}
        idle.put((worker, info))
        return {**record, "worker": info}

    try:
        with ThreadPoolExecutor(len(pool)) as executor:
            starts = [executor.submit(worker.start, probe_overrides) for worker in pool]
            for index, (worker, start) in enumerate(zip(pool, starts)):
                idle.put((worker, start.result() | {"node": f"local-{index}"}))
            futures = {executor.submit(run_one, job): job for job in jobs}
            for future in as_completed(futures):
                on_record(futures[future], future.result())
    finally:
        for worker in pool:
            worker.close()
