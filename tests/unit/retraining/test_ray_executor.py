"""The Ray executor on a real local Ray cluster (one CPU). Slow: starting Ray takes seconds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adaptd.retraining.executors import TrainingFailed, load_executor, verify_adapter_dir
from adaptd.retraining.spec import Progress
from tests.unit.retraining.test_trainer import LABELS, make_spec

ray = pytest.importorskip("ray", reason="ray is an optional dependency")

pytestmark = [
    pytest.mark.slow,
    # Ray's node object stops its daemons asynchronously at shutdown, leaving Popen objects that
    # warn when collected; nothing of ours leaks.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_task_trains_reports_and_returns_a_checked_adapter(
    local_ray: None, tmp_path: Path, tiny_base: Path
) -> None:
    executor = load_executor("ray", poll_s=0.1)
    seen: list[Progress] = []
    result = executor.run(
        make_spec(tmp_path / "run", tiny_base, epochs=1), timeout_s=300, on_progress=seen.append
    )
    assert seen and seen[-1].phase == "validate"
    assert len(result.predictions["candidate"]["recent"]) == 100
    verify_adapter_dir(Path(result.adapter_dir), LABELS)


def test_ray_task_failure_is_a_reason(local_ray: None, tmp_path: Path, tiny_base: Path) -> None:
    executor = load_executor("ray", poll_s=0.1)
    spec = make_spec(tmp_path / "run", tiny_base, warm_start=str(tmp_path / "missing"))
    expected = "ray task failed: IncompatibleAdapterError: .*missing"
    with pytest.raises(TrainingFailed, match=expected):
        executor.run(spec, timeout_s=300, on_progress=lambda p: None)


def _records(spec: Any) -> list[dict[str, Any]]:
    lines = Path(spec.progress_file).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_ray_timeout_asks_the_task_to_stop(
    local_ray: None, tmp_path: Path, tiny_base: Path
) -> None:
    """A timed-out task is asked to stop and returns: run() raises only after it has ended, and
    no worker is killed (a forced cancel can abort the daemon, Ray's driver)."""
    executor = load_executor("ray", poll_s=0.1)
    spec = make_spec(tmp_path / "run", tiny_base, epochs=200, report_every=1)
    with pytest.raises(TrainingFailed, match="timed out"):
        executor.run(spec, timeout_s=3, on_progress=lambda p: None)
    assert _records(spec)[-1] == {"type": "stopped"}, "the task saw the stop file and returned"


def test_ray_cancel_asks_the_task_to_stop(local_ray: None, tmp_path: Path, tiny_base: Path) -> None:
    executor = load_executor("ray", poll_s=0.1)
    spec = make_spec(tmp_path / "run", tiny_base, epochs=200, report_every=1)
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.step >= 3:
            cancel.set()

    with pytest.raises(TrainingFailed, match="cancelled"):
        executor.run(spec, timeout_s=300, on_progress=on_progress, cancel=cancel)
    assert _records(spec)[-1] == {"type": "stopped"}
