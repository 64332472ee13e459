"""The fine-tune as a Ray task, for users whose training belongs on a cluster (a GPU node).

Loaded only when ``retraining.executor: ray`` (Ray is an optional dependency). The task runs the
same :func:`adaptd.retraining.trainer.train` as the local child and reports through the same
progress file, so the spec's ``work`` directory must be on storage the worker and the daemon
share (the local machine for a local Ray; a shared volume on a real cluster). A task that dies or
runs out of memory raises and ends the run as failed, never with an adapter.

Timeout and cancellation ask the task to stop: the daemon writes a stop file beside the progress
file, and the task checks it at each progress report and returns. Only a task that does not stop
within ``grace_s`` gets ``ray.cancel`` (an interrupt in the task); never ``force=True``, which
kills the worker: with the daemon as Ray's driver, that races the task's own reply and Ray 2.60
then aborts the driver process (``task_manager.cc: Check failed ... Tried to complete task that
was not pending``, seen in CI; the retry-path twin is ray-project/ray#54798).

GPUs: a cuda ``retraining.device`` (or ``auto`` on a cluster that has GPUs) asks Ray for one GPU,
and the task trains on ``cuda``, the device Ray made visible to it; the daemon's own device index
means nothing on another node.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from adaptd.errors import ConfigError
from adaptd.modeling.device import ray_gpus, worker_device
from adaptd.retraining.executors import (
    ProgressCallback,
    TrainingFailed,
    read_reports,
    verify_adapter_dir,
)
from adaptd.retraining.spec import Progress, TrainResult, TrainSpec
from adaptd.security import ray_env_vars

logger = logging.getLogger(__name__)


class _Stopped(Exception):
    """The daemon asked the task to stop (its stop file exists)."""


def stop_file(spec: TrainSpec) -> Path:
    """Where the daemon asks a run's task to stop: beside its progress file."""
    return Path(spec.progress_file).with_suffix(".stop")


def _train_task(spec_dict: dict[str, Any]) -> dict[str, Any] | None:
    """Runs on the Ray worker. Returns None when it stopped because the daemon asked."""
    from adaptd.retraining.child import ProgressWriter
    from adaptd.retraining.trainer import train

    spec = TrainSpec.from_dict(spec_dict)
    stop = stop_file(spec)
    writer = ProgressWriter(Path(spec.progress_file))

    def report(progress: Progress) -> None:
        writer.progress(progress)
        if stop.exists():
            raise _Stopped

    try:
        return train(spec, report).to_dict()
    except _Stopped:
        writer.write({"type": "stopped"})
        return None
    finally:
        writer.close()


class RayExecutor:
    def __init__(
        self, *, address: str | None = None, poll_s: float = 0.5, grace_s: float = 30.0
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise ConfigError(
                "retraining.executor: ray needs the ray package (pip install 'ray>=2.9')"
            ) from e
        self._ray = ray
        self.address = address
        self.poll_s = poll_s
        #: how long a task asked to stop may take to see it (it looks at each progress report)
        self.grace_s = grace_s

    def _ensure_connected(self) -> None:
        if not self._ray.is_initialized():
            self._ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )

    def task_options(self, spec: TrainSpec) -> tuple[dict[str, Any], TrainSpec]:
        """The resources the task asks Ray for, and the spec as the worker must see it."""
        gpus_in_cluster = float(self._ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
        gpus = ray_gpus(spec.device, cluster_gpus=gpus_in_cluster)
        threads = str(spec.threads)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        options = {
            "num_cpus": spec.threads,
            "num_gpus": gpus,
            "max_retries": 0,
            # The training needs none of the daemon's secrets (see ray_env_vars).
            "runtime_env": {"env_vars": ray_env_vars(os.environ, env)},
        }
        return options, dataclasses.replace(spec, device=worker_device(gpus))

    def run(
        self,
        spec: TrainSpec,
        *,
        timeout_s: float,
        on_progress: ProgressCallback,
        cancel: threading.Event | None = None,
    ) -> TrainResult:
        ray = self._ray
        self._ensure_connected()
        Path(spec.out_dir).parent.mkdir(parents=True, exist_ok=True)
        try:
            options, spec = self.task_options(spec)
        except ConfigError as e:
            raise TrainingFailed(str(e)) from e
        stop_file(spec).unlink(missing_ok=True)
        task = ray.remote(**options)(_train_task)
        ref = task.remote(spec.to_dict())
        cancel = cancel or threading.Event()
        deadline = time.monotonic() + timeout_s
        offset = 0
        progress = Path(spec.progress_file)
        try:
            while True:
                ready, _ = ray.wait([ref], timeout=self.poll_s)
                batch, offset = read_reports(progress, offset)
                for record in batch:
                    if record.get("type") == "progress":
                        on_progress(Progress.from_dict(record))
                if ready:
                    break
                if cancel.is_set():
                    raise TrainingFailed("cancelled")
                if time.monotonic() > deadline:
                    raise TrainingFailed(f"timed out after {round(timeout_s)} s")
            try:
                data = ray.get(ref)
            except ray.exceptions.RayError as e:
                # RayTaskError carries the worker's exception as its cause; crashes and OOM kills
                # are their own classes whose first line says what happened.
                cause = getattr(e, "cause", None)
                if isinstance(cause, BaseException):
                    detail = f"{type(cause).__name__}: {cause}"
                else:
                    text = str(e).strip()
                    detail = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
                raise TrainingFailed(f"ray task failed: {detail}") from e
        except TrainingFailed:
            self._stop(ref, stop_file(spec))
            raise
        if data is None:  # someone else wrote the stop file while the task ran
            raise TrainingFailed("the task stopped on request")
        result = TrainResult.from_dict(data)
        verify_adapter_dir(Path(result.adapter_dir), spec.labels)
        return result

    def _stop(self, ref: Any, stop: Path) -> None:
        """Asks a task that is still running to stop, and waits for it to end."""
        ray = self._ray
        ready, _ = ray.wait([ref], timeout=0)
        if ready:
            return
        stop.touch()
        ready, _ = ray.wait([ref], timeout=self.grace_s)
        if ready:
            return
        # Stuck between progress reports (loading, a long step): interrupt it, still not a kill.
        ray.cancel(ref)
        ready, _ = ray.wait([ref], timeout=self.grace_s)
        if not ready:
            logger.warning(
                "the ray task of %s did not stop within %.0f s of being asked and interrupted; "
                "left to Ray",
                stop.parent,
                2 * self.grace_s,
            )
