"""Where the fine-tune runs. The local child process is the default; Ray is optional.

Executors are named by import string and loaded lazily (as uvicorn names its protocols), so Ray
is imported only by a daemon configured with ``retraining.executor: ray``.

Whatever the executor, a run either returns a :class:`TrainResult` whose adapter directory has
been checked (:func:`verify_adapter_dir`), or raises :class:`TrainingFailed` with the reason. A
crash, a timeout, a kill or an out-of-memory never yields an adapter to register.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from adaptd.errors import AdaptdError, ConfigError
from adaptd.retraining.spec import Progress, TrainResult, TrainSpec
from adaptd.security import child_env

logger = logging.getLogger(__name__)

EXECUTORS = {
    "local": "adaptd.retraining.executors:LocalExecutor",
    "ray": "adaptd.retraining.ray_executor:RayExecutor",
}

ProgressCallback = Callable[[Progress], None]


class TrainingFailed(AdaptdError):
    """The training run ended without a usable adapter; the message says why."""


class Executor(Protocol):
    def run(
        self,
        spec: TrainSpec,
        *,
        timeout_s: float,
        on_progress: ProgressCallback,
        cancel: threading.Event | None = None,
    ) -> TrainResult: ...


def load_executor(name: str, **options: Any) -> Executor:
    """The executor class named in config, built with ``options``."""
    target = EXECUTORS.get(name)
    if target is None:
        raise ConfigError(
            f"retraining.executor: unknown executor {name!r} (one of {sorted(EXECUTORS)})"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"retraining.executor: {name!r} needs a missing package: {e}") from e
    factory: Callable[..., Executor] = getattr(module, attr)
    return factory(**options)


def verify_adapter_dir(path: Path, labels: tuple[str, ...], *, require_meta: bool = True) -> None:
    """Check an adapter directory before anyone uses it: complete PEFT files, weights that load
    and are finite, the labels we train for. Raises :class:`TrainingFailed` naming the problem.

    ``require_meta`` asks for adaptd's own ``adaptd.json`` (always written by our trainer; an
    adapter imported from elsewhere may lack it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = path / "adapter_config.json"
    weights = path / "adapter_model.safetensors"
    meta = path / "adaptd.json"
    required = (config, weights, meta) if require_meta else (config, weights)
    for item in required:
        if not item.is_file() or item.stat().st_size == 0:
            raise TrainingFailed(f"adapter is incomplete: {item.name} missing or empty")
    try:
        json.loads(config.read_text(encoding="utf-8"))
        recorded = (
            json.loads(meta.read_text(encoding="utf-8")).get("labels") if meta.is_file() else None
        )
        tensors = load_file(str(weights))
    except (OSError, ValueError, SafetensorError) as e:
        raise TrainingFailed(f"adapter is unreadable: {e}") from e
    if (require_meta or recorded is not None) and tuple(recorded or ()) != labels:
        raise TrainingFailed(f"adapter has labels {recorded}, expected {list(labels)}")
    for name, tensor in tensors.items():
        if not bool(tensor.isfinite().all()):
            raise TrainingFailed(f"adapter has non-finite weights in {name} (diverged)")


def read_reports(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines appended to the progress file since ``offset``."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("unreadable progress line: %r", line[:200])
    return records, offset + end


def outcome(records: list[dict[str, Any]], returncode: int | None, stderr_tail: str) -> TrainResult:
    """Turn the child's final reports and exit status into a result or a failure reason."""
    result = next((r for r in records if r.get("type") == "result"), None)
    error = next((r for r in records if r.get("type") == "error"), None)
    if error is not None:
        raise TrainingFailed(str(error.get("message")))
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (the kernel's OOM killer, or an operator)" if name == "SIGKILL" else ""
        raise TrainingFailed(f"training process killed by {name}{hint}")
    if returncode not in (0, None) or result is None:
        detail = f": {stderr_tail}" if stderr_tail else ""
        raise TrainingFailed(f"training process exited with status {returncode}{detail}")
    return TrainResult.from_dict(result)


class LocalExecutor:
    """Runs ``python -m adaptd.retraining.child`` with its own threads, niceness and deadline."""

    def __init__(self, *, nice: int = 10, poll_s: float = 0.2, grace_s: float = 5.0) -> None:
        self.nice = nice
        self.poll_s = poll_s
        self.grace_s = grace_s
        #: pid of the running child (tests and operators may signal it)
        self.pid: int | None = None

    def _env(self, threads: int) -> dict[str, str]:
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        # Scrubbed: the child reads its job from the spec file and needs none of the daemon's
        # secrets (store URL, tokens) or unrelated credentials.
        return child_env(
            os.environ,
            {
                "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
                "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads),
                "TOKENIZERS_PARALLELISM": "false",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
            },
        )

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        """terminate, then kill if it ignores us for ``grace_s``."""
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run(
        self,
        spec: TrainSpec,
        *,
        timeout_s: float,
        on_progress: ProgressCallback,
        cancel: threading.Event | None = None,
    ) -> TrainResult:
        work = Path(spec.out_dir).parent
        work.mkdir(parents=True, exist_ok=True)
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        progress = Path(spec.progress_file)
        stderr_path = work / "child.stderr"
        cancel = cancel or threading.Event()
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "adaptd.retraining.child", str(spec_path)],
                env=self._env(spec.threads),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
            self.pid = proc.pid
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, self.nice)
            except OSError:
                logger.debug("cannot renice training child %d", proc.pid)
            logger.info("training child %d started (%d threads)", proc.pid, spec.threads)
            records: list[dict[str, Any]] = []
            offset = 0
            deadline = time.monotonic() + timeout_s
            try:
                while True:
                    returncode = proc.poll()
                    batch, offset = read_reports(progress, offset)
                    for record in batch:
                        if record.get("type") == "progress":
                            on_progress(Progress.from_dict(record))
                        else:
                            records.append(record)
                    if returncode is not None:
                        break
                    if cancel.is_set():
                        raise TrainingFailed("cancelled")
                    if time.monotonic() > deadline:
                        raise TrainingFailed(f"timed out after {math.ceil(timeout_s)} s")
                    cancel.wait(self.poll_s)
            finally:
                self._stop(proc)
        tail = stderr_path.read_text(encoding="utf-8", errors="replace").strip()[-500:]
        result = outcome(records, returncode, tail.splitlines()[-1] if tail else "")
        verify_adapter_dir(Path(result.adapter_dir), spec.labels)
        return result
