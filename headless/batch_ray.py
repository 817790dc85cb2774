"""`--ray ADDRESS`: one `BatchWorker` per Ray actor (one per GPU, fractional GPUs to pack several on one card, or
CPUs), fed job by job from the driver; only this module imports Ray, and only when `--ray` is given.

Fault tolerance is Ray's: actors restart (`max_restarts`) and a job in flight on a lost worker or node is retried
on the restarted actor (`max_task_retries`). On top, the driver resubmits a job whose actor is gone for good to
another actor, and gives up on an actor that answers nothing within the job timeout plus a start-up allowance.
Ray's `ActorPool` is not used because its errors do not say which job an actor loss belongs to, and it has no
per-job deadline.
"""
from __future__ import annotations

import socket
import time
from collections import deque
from pathlib import Path
from typing import Callable

from .batch_jobs import Job
from .batch_worker import BatchWorker

PACKAGE = Path(__file__).resolve().parent  # headless/
START_ALLOWANCE = 600.0  # seconds a (re)started worker may take to start ComfyUI and load models


def import_ray():
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--ray needs Ray on this machine and on every node: pip install 'sv4d2[ray]' "
                           "(or pip install 'ray>=2.40'); without Ray use --local N") from error
    return ray


class RayWorker:
    """The actor: a BatchWorker plus the Ray node it runs on (decorated with ray.remote in `run_ray`)."""

    def __init__(self, config: dict):
        self.worker = BatchWorker(**config)

    def start(self, probe_overrides: list[str]) -> dict:
        return self._where(self.worker.start(probe_overrides))

    def run(self, job: Job) -> dict:
        record = self.worker.run(job)
        record["worker"] = self._where(record.get("worker") or self.worker.info())
        return record

    def close(self) -> None:
        self.worker.close()

    @staticmethod
    def _where(info: dict) -> dict:
        import ray

        return {**info, "node": ray.get_runtime_context().get_node_id()}


def run_ray(jobs: list[Job], config: dict, address: str, *, workers: int | None, gpus_per_worker: float | None,
            cpus_per_worker: float, retries: int, probe_overrides: list[str],
            on_start: Callable[[Job, dict], None], on_record: Callable[[Job, dict], None]) -> None:
    """Run `jobs` on the Ray cluster at `address`; every job ends in exactly one `on_record` call."""
    ray = import_ray()
    _check_reachable(address)
    # Ray ships this package (a few .py files) to every node; ComfyUI and the pack must be installed there.
    ray.init(address=address, runtime_env={"py_modules": [str(PACKAGE)]}, log_to_driver=False,
             logging_level="WARNING")
    try:
        resources = ray.cluster_resources()
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        if workers is None:
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            workers = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker else nodes
        if workers < 1:
            raise RuntimeError(f"the Ray cluster at {address} has no room for a worker ({resources}); "
                               "lower --gpus-per-worker/--cpus-per-worker or add nodes")
        actor_class = ray.remote(RayWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=retries, max_task_retries=retries,
            scheduling_strategy="SPREAD")
        worker_config = {**config, "cpu": None if gpus_per_worker else True}
        actors = [actor_class.remote(worker_config) for _ in range(min(workers, len(jobs)))]
        try:
            _dispatch(ray, jobs, actors, config["job_timeout"], retries, probe_overrides, on_start, on_record)
        finally:
            _close(ray, actors)
    finally:
        ray.shutdown()


def _dispatch(ray, jobs: list[Job], actors: list, job_timeout: float, retries: int, probe_overrides: list[str],
              on_start: Callable[[Job, dict], None], on_record: Callable[[Job, dict], None]) -> None:
    """Start the actors, then keep each busy with one job at a time until every job has its record."""
    starts = {actor.start.remote(probe_overrides): actor for actor in actors}
    ready, _ = ray.wait(list(starts), num_returns=len(starts), timeout=START_ALLOWANCE)
    idle, infos, start_errors = deque(), {}, []
    for ref in ready:
        try:
            infos[starts[ref]] = ray.get(ref)
            idle.append(starts[ref])
        except ray.exceptions.RayError as error:
            start_errors.append(error)
    if start_errors and isinstance(getattr(start_errors[0], "cause", None), ValueError):
        raise start_errors[0].cause  # the workflow or a --set is wrong: no job can run
    if not idle:
        reason = _summary(start_errors[0]) if start_errors else f"none started within {START_ALLOWANCE:.0f} s"
        raise RuntimeError(f"no Ray worker could start: {reason}")
    pending = deque((job, []) for job in jobs)  # (job, the workers it lost so far)
    running: dict = {}  # ref -> (job, lost, actor, submitted at)
    while pending or running:
        while idle and pending:
            job, lost = pending.popleft()
            actor = idle.popleft()
            on_start(job, infos[actor])
            running[actor.run.remote(job)] = (job, lost, actor, time.monotonic())
        if not running:
            break
        done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        for ref in done:
            job, lost, actor, _ = running.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayActorError as error:  # Ray's own retries used up, or given up on below
                lost = [*lost, f"{_describe(infos[actor])} ({type(error).__name__})"]
                if not isinstance(error, ray.exceptions.ActorDiedError):
                    idle.append(actor)  # unavailable for now; Ray is restarting it
                if len(lost) <= retries:
                    pending.appendleft((job, lost))
                else:
                    on_record(job, {"job": job.name, "input": job.input, "status": "failed", "attempts": len(lost),
                                    "error": f"gave up after losing {len(lost)} workers: {'; '.join(lost)}"})
                continue
            except ray.exceptions.RayError as error:  # a bug in the worker: this job fails, the actor stays
                record = {"job": job.name, "input": job.input, "status": "failed", "error": _summary(error)}
            if record.get("worker", {}).get("pid") != infos[actor].get("pid"):  # Ray restarted the actor
                lost = [*lost, f"{_describe(infos[actor])} (restarted by Ray)"]
            if lost:
                record["attempts"] = record.get("attempts", 1) + len(lost)
                record["note"] = f"lost worker {'; '.join(lost)}; redone by {_describe(record.get('worker', {}))}"
            infos[actor] = record.get("worker") or infos[actor]
            idle.append(actor)
            on_record(job, record)
        now = time.monotonic()
        for ref, (job, lost, actor, submitted) in running.items():
            if now - submitted > job_timeout + START_ALLOWANCE:  # dead node whose actor cannot come back
                ray.kill(actor, no_restart=True)
        if not idle and not running and pending:
            for job, lost in pending:
                on_record(job, {"job": job.name, "input": job.input, "status": "failed",
                                "error": "no Ray worker left (all were lost); rerun to resume"})
            pending.clear()


def _check_reachable(address: str) -> None:
    """Fail fast on a wrong HOST:PORT (ray.init would retry for minutes); 'auto' and ray:// are Ray's to resolve."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        raise RuntimeError(f"no Ray head answers at {address} ({error}): start one with `ray start --head "
                           "--port=6379` or fix --ray HOST:PORT (see docs/scale.md)") from error


def _describe(worker: dict) -> str:
    return f"pid {worker.get('pid')} on node {str(worker.get('node', '?'))[:12]}"


def _close(ray, actors: list) -> None:
    """Stop every worker's ComfyUI before the actors go (a killed actor would orphan its server)."""
    closing = [actor.close.options(max_task_retries=0).remote() for actor in actors]  # a lost one fails at once
    ray.wait(closing, num_returns=len(closing), timeout=60)
    for actor in actors:
        ray.kill(actor)


def _summary(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
