"""Nothing accepted is lost: the prediction log and the store seen from a running daemon (real
HTTP, real SQLite, tiny model). Feedback sent right after each answer by concurrent clients is
never refused; a store outage does not take the daemon out of rotation; a stop flushes the log
before the control loop is asked to stop, and fits in its deadline even with the store down."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, text

from adaptd.metrics import new_metrics
from adaptd.privacy.guard import StoredText
from adaptd.role import Role
from adaptd.service import RunState, Service
from adaptd.serving.batcher import Prediction
from adaptd.serving.http import StillBufferedError, store_feedback
from adaptd.serving.logwriter import PredictionLog, make_row
from adaptd.serving.settings import ServerSettings
from adaptd.storage import repository as repo
from adaptd.storage.records import FeedbackRecord
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("log-base") / "bert")


@pytest.fixture(scope="module")
def adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("log-adapters") / "a", seed=1)


def _start(settings_dir: Path, base: Path, adapter: Path, **sections: dict[str, object]) -> Service:
    settings = settings_for(settings_dir, base, **sections)  # type: ignore[arg-type]
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    service = Service(settings=settings, role=Role.SERVE)
    service.startup()
    return service


@pytest.fixture
def stop() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        if service.state not in (RunState.STOPPED, RunState.CREATED):
            service.handle_term()
            service.shutdown()


def _client(service: Service) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30)


def test_feedback_right_after_each_answer_is_never_refused(
    tiny_base: Path, adapter: Path, tmp_path: Path, stop: list[Service]
) -> None:
    # Rows are written every 20 ms, so commits race with the feedback lookups all the time.
    service = _start(tmp_path / "state", tiny_base, adapter, serving={"log_flush_ms": 20.0})
    stop.append(service)
    clients, requests = 4, 200
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        with _client(service) as client:
            for i in range(requests):
                item = {"text": f"client {n} text {i}"}
                if i % 2:  # half with the client's own id, half with a generated one
                    item["id"] = f"c{n}-{i}-{uuid.uuid4().hex[:8]}"
                answer = client.post("/v1/predict", json={"inputs": [item]})
                if answer.status_code != 200:
                    with lock:
                        outcomes[f"predict {answer.status_code}"] += 1
                    continue
                pid = answer.json()["predictions"][0]["id"]
                fb = client.post(
                    "/v1/feedback", json={"feedback": [{"id": pid, "label": "positive"}]}
                )
                with lock:
                    outcomes[f"feedback {fb.status_code}"] += 1

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == {"feedback 200": clients * requests}, outcomes
    assert service.engine is not None
    with service.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM feedback")).scalar_one()
    assert stored == clients * requests

    with _client(service) as client:
        response = client.post(
            "/v1/feedback", json={"feedback": [{"id": "nope-1", "label": "positive"}]}
        )
    assert response.status_code == 404
    assert "'nope-1'" in response.json()["detail"]


def _wait(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_store_outage_keeps_the_daemon_ready_and_serving(
    tiny_base: Path, adapter: Path, tmp_path: Path, stop: list[Service]
) -> None:
    state = tmp_path / "state"
    service = _start(state, tiny_base, adapter, serving={"registry_poll_s": 0.05})
    stop.append(service)
    assert service.engine is not None and service.metrics is not None
    registry = service.metrics.registry
    assert registry.get_sample_value("adaptd_store_up") == 1

    # The store's directory disappears and pooled connections are dropped, as when a disk is
    # unmounted or a database server restarts: every new connection fails.
    hidden = tmp_path / "away"
    state.rename(hidden)
    service.engine.dispose()
    ids = [f"outage-{i}" for i in range(20)]
    with _client(service) as client:
        _wait(lambda: registry.get_sample_value("adaptd_store_up") == 0, "the probe to fail")
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        for i, pid in enumerate(ids):  # with the client's ids too: no store check needed
            item = {"text": f"during the outage {i}", "id": pid}
            assert client.post("/v1/predict", json={"inputs": [item]}).status_code == 200
        status = client.get("/v1/status").json()
        assert status["ready"] is True
        assert status["store"]["up"] is False and status["store"]["error"]
        assert status["log"]["store_ok"] is False and status["log"]["queued_rows"] == 20
        feedback = client.post(
            "/v1/feedback", json={"feedback": [{"id": ids[0], "label": "positive"}]}
        )
        assert feedback.status_code == 503 and "retry later" in feedback.json()["detail"]
        assert feedback.headers["retry-after"] == "1"

        hidden.rename(state)  # the store is back: the buffered rows are written
        _wait(lambda: registry.get_sample_value("adaptd_store_up") == 1, "the probe to recover")
        assert service.log is not None and service.log.flush(timeout=20)
        assert client.get("/v1/status").json()["store"]["up"] is True
        feedback = client.post(
            "/v1/feedback", json={"feedback": [{"id": ids[0], "label": "positive"}]}
        )
        assert feedback.status_code == 200
    stored = {p.id for p in repo.recent_predictions(service.engine, limit=100)}
    assert set(ids) <= stored


# --------------------------------------------------------------------------- stopping


def test_the_log_is_flushed_before_the_control_loop_is_stopped(
    tiny_base: Path, adapter: Path, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path / "state",
        tiny_base,
        server={"drain_timeout_s": 1.0, "stop_timeout_s": 3.0},
        serving={"log_flush_ms": 60_000.0},
    )
    engine = store_for(settings)
    register(engine, settings, adapter)
    service = Service(settings=settings, role=Role.ALL)
    service.startup()
    seen_by_control: list[int] = []
    retrain_done = threading.Event()

    def stuck_retrain() -> None:
        # The control loop may wait minutes for a running retrain: the rows must be safe before.
        seen_by_control.append(repo.count_predictions(engine))
        retrain_done.wait(60)

    service.control_context().on_shutdown(stuck_retrain)
    try:
        with _client(service) as client:
            for i in range(10):
                answer = client.post("/v1/predict", json={"inputs": [f"text {i}"]})
                assert answer.status_code == 200
        assert repo.count_predictions(engine) == 0, "a 60 s flush interval keeps them buffered"
        started = time.monotonic()
        service.handle_term()
        service.shutdown()
        elapsed = time.monotonic() - started
    finally:
        retrain_done.set()
    assert seen_by_control == [10]
    assert elapsed < 4.5, f"a stuck control loop held the stop for {elapsed:.1f} s (deadline 3 s)"
    engine.dispose()


def test_a_stop_with_the_store_down_ends_within_its_deadline(
    tiny_base: Path, adapter: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    service = _start(
        state,
        tiny_base,
        adapter,
        server={"drain_timeout_s": 1.0, "stop_timeout_s": 3.0},
        serving={"log_flush_ms": 60_000.0},
    )
    with _client(service) as client:
        for i in range(5):
            assert client.post("/v1/predict", json={"inputs": [f"text {i}"]}).status_code == 200
    state.rename(tmp_path / "away")  # the store cannot be reached while stopping
    assert service.engine is not None and service.metrics is not None
    service.engine.dispose()
    started = time.monotonic()
    service.handle_term()
    service.shutdown()
    elapsed = time.monotonic() - started
    assert service.state == RunState.STOPPED
    assert 2.0 < elapsed < 4.5, f"the stop took {elapsed:.1f} s for a 3 s deadline"
    lost = service.metrics.registry.get_sample_value(
        "adaptd_prediction_log_dropped_total", {"reason": "shutdown"}
    )
    assert lost == 5, "rows that could not be written are counted, not silently gone"


def test_the_default_stop_fits_in_the_units_timeout_with_margin() -> None:
    unit = (ROOT / "deploy" / "adaptd.service").read_text()
    match = re.search(r"^TimeoutStopSec=(\d+)s?$", unit, re.MULTILINE)
    assert match, "deploy/adaptd.service sets TimeoutStopSec"
    defaults = ServerSettings()
    assert defaults.stop_timeout_s + 10 <= int(match.group(1))
    assert defaults.drain_timeout_s < defaults.stop_timeout_s


def test_a_drain_longer_than_the_stop_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="drain_timeout_s .* must be below stop_timeout_s"):
        ServerSettings(drain_timeout_s=50, stop_timeout_s=45)


def test_feedback_for_a_row_the_writer_cannot_store_yet_is_a_503_not_a_404(
    sqlite_engine: Engine,
) -> None:
    log = PredictionLog(
        sqlite_engine, new_metrics().log, buffer_rows=10, buffer_bytes=1 << 30, flush_ms=1
    )
    prediction = Prediction(
        label="positive",
        score=0.9,
        probabilities=(0.1, 0.9),
        embedding=np.zeros(4, dtype=np.float32),
        adapter="v1",
        truncated=False,
    )
    now = datetime.now(UTC)
    row = make_row(
        prediction_id="served-1",
        ts=now,
        text=StoredText("t", "h"),
        attributes={},
        prediction=prediction,
        labels=("negative", "positive"),
        latency_ms=1.0,
    )
    # A writer that is not running stands for one stuck behind a slow store.
    log.submit([row])
    served = [FeedbackRecord(prediction_id="served-1", label="positive", ts=now)]
    with pytest.raises(StillBufferedError) as refused:
        store_feedback(sqlite_engine, log, served)
    assert refused.value.prediction_id == "served-1"
    log.start()
    try:
        assert store_feedback(sqlite_engine, log, served) == []
        unknown = [FeedbackRecord(prediction_id="never-served", label="positive", ts=now)]
        assert store_feedback(sqlite_engine, log, unknown) == ["never-served"]
    finally:
        log.stop()
