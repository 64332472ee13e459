from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from adaptd.errors import ConfigError
from adaptd.retraining.executors import (
    LocalExecutor,
    TrainingFailed,
    load_executor,
    outcome,
    verify_adapter_dir,
)
from adaptd.retraining.spec import Progress
from tests.unit.retraining.test_trainer import LABELS, make_spec


def test_local_child_trains_and_reports(tmp_path: Path, tiny_base: Path) -> None:
    seen: list[Progress] = []
    spec = make_spec(tmp_path / "run", tiny_base, epochs=1)
    result = LocalExecutor(poll_s=0.05).run(spec, timeout_s=120, on_progress=seen.append)
    assert seen and seen[-1].phase == "validate"
    assert len(result.predictions["candidate"]["recent"]) == 100
    verify_adapter_dir(Path(result.adapter_dir), LABELS)


def test_child_killed_mid_training_is_a_failure_without_adapter(
    tmp_path: Path, tiny_base: Path
) -> None:
    executor = LocalExecutor(poll_s=0.05)
    spec = make_spec(tmp_path / "run", tiny_base, epochs=50, report_every=1)

    def kill_on_first_report(progress: Progress) -> None:
        assert executor.pid is not None
        os.kill(executor.pid, signal.SIGKILL)

    with pytest.raises(TrainingFailed, match="killed by SIGKILL"):
        executor.run(spec, timeout_s=120, on_progress=kill_on_first_report)
    assert not (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()


def test_timeout_and_cancel_stop_the_child(tmp_path: Path, tiny_base: Path) -> None:
    executor = LocalExecutor(poll_s=0.05)
    with pytest.raises(TrainingFailed, match="timed out after 1 s"):
        executor.run(make_spec(tmp_path / "t", tiny_base), timeout_s=0.5, on_progress=print)
    assert executor.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(executor.pid, 0)
    cancel = threading.Event()
    spec = make_spec(tmp_path / "c", tiny_base, epochs=50, report_every=1)
    with pytest.raises(TrainingFailed, match="cancelled"):
        executor.run(spec, timeout_s=120, on_progress=lambda p: cancel.set(), cancel=cancel)


def test_crash_in_child_reports_its_reason(tmp_path: Path, tiny_base: Path) -> None:
    spec = make_spec(tmp_path / "run", tiny_base, warm_start=str(tmp_path / "no-such-adapter"))
    with pytest.raises(TrainingFailed, match="no-such-adapter"):
        LocalExecutor(poll_s=0.05).run(spec, timeout_s=120, on_progress=print)


def test_outcome_reasons() -> None:
    with pytest.raises(TrainingFailed, match="out of memory"):
        outcome([{"type": "error", "message": "out of memory while training"}], 1, "")
    with pytest.raises(TrainingFailed, match="killed by SIGTERM"):
        outcome([], -15, "")
    with pytest.raises(TrainingFailed, match="exited with status 3: boom"):
        outcome([], 3, "boom")
    with pytest.raises(TrainingFailed, match="exited with status 0"):
        outcome([], 0, "")  # exited cleanly but never wrote a result


def test_verify_rejects_incomplete_corrupt_and_diverged_adapters(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    d = tmp_path / "a"
    d.mkdir()
    with pytest.raises(TrainingFailed, match="adapter_config.json missing"):
        verify_adapter_dir(d, LABELS)
    (d / "adapter_config.json").write_text("{}")
    (d / "adaptd.json").write_text(json.dumps({"labels": list(LABELS)}))
    (d / "adapter_model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(TrainingFailed, match="unreadable"):
        verify_adapter_dir(d, LABELS)
    save_file({"w": torch.tensor([1.0, float("nan")])}, str(d / "adapter_model.safetensors"))
    with pytest.raises(TrainingFailed, match="non-finite weights in w"):
        verify_adapter_dir(d, LABELS)
    save_file({"w": torch.tensor([1.0])}, str(d / "adapter_model.safetensors"))
    with pytest.raises(TrainingFailed, match="labels"):
        verify_adapter_dir(d, ("a", "b", "c"))


def test_unknown_executor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'slurm'"):
        load_executor("slurm")
