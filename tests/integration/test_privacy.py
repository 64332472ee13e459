"""What a daemon keeps of people's texts, checked on the real loop: real HTTP, a real SQLite
store, a tiny model. Personal data planted in the texts must never reach the store, the state
directory, the logs or /metrics in ``redacted`` mode; ``hashed`` mode logs no text at all and takes
it back, checked against its keyed hash, with feedback; retraining works on redacted text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from adaptd.datasets.records import Example
from adaptd.metrics import Metrics
from adaptd.monitoring.edges import build_windows
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.privacy.guard import keyed_hash
from adaptd.privacy.keys import load_key
from adaptd.privacy.settings import KEY_ENV, PrivacySettings
from adaptd.retraining.job import RetrainRequest
from adaptd.retraining.replay import RESERVOIR
from adaptd.role import Role
from adaptd.service import RunState, Service
from adaptd.signals import Status
from adaptd.storage import repository as repo
from tests.integration.test_retraining_job import make_job, make_settings
from tests.unit.retraining.store_registry import StoreRegistry
from tests.unit.retraining.synthetic import keyword_examples
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

EMAIL = "jane.roe@example.org"
PHONE = "+1 415 555 0132"
CARD = "4111 1111 1111 1111"
IBAN = "DE89370400440532013000"
PLANTED = (EMAIL, PHONE, CARD, IBAN, "jane.roe", "555 0132", "4111 1111")
#: an attribute value: stored as sent (attributes are the operator's slicing keys), but never a
#: Prometheus label value
ATTRIBUTE = "attr-value-7f3a"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("privacy-base") / "bert")


@pytest.fixture(scope="module")
def adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("privacy-adapters") / "a", seed=1)


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        if service.state not in (RunState.STOPPED, RunState.CREATED):
            service.handle_term()
            service.shutdown()


def _start(state: Path, base: Path, adapter: Path, privacy: dict[str, object]) -> Service:
    settings = settings_for(state, base, privacy=privacy, logging={"level": "DEBUG"})
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    service = Service(settings=settings, role=Role.SERVE)
    service.startup()
    return service


def _client(service: Service) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30)


def _leaks(root: Path, needles: tuple[str, ...]) -> list[str]:
    """Every file under ``root`` (the SQLite file and its WAL included) holding a needle."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.name}: {n!r}" for n in needles if n.encode() in data]
    return found


def test_planted_personal_data_never_reaches_store_state_logs_or_metrics(
    tiny_base: Path,
    adapter: Path,
    tmp_path: Path,
    started: list[Service],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    service = _start(state, tiny_base, adapter, {"text": "redacted"})
    started.append(service)
    texts = [
        f"loved it, write to {EMAIL}",
        f"call me on {PHONE} tonight",
        f"my card {CARD} was charged twice, refund to {IBAN}",
    ]
    inputs = [
        {"text": t, "id": f"p{i}", "attributes": {"group": ATTRIBUTE}} for i, t in enumerate(texts)
    ]
    with _client(service) as client:
        answer = client.post("/v1/predict", json={"inputs": inputs})
        assert answer.status_code == 200, answer.text
        # a bad request quoting the text back must not log it either
        bad = client.post("/v1/predict", json={"inputs": [{"text": EMAIL, "oops": 1}]})
        assert bad.status_code == 422
        feedback = [{"id": f"p{i}", "label": "positive"} for i in range(len(texts))]
        assert client.post("/v1/feedback", json={"feedback": feedback}).status_code == 200
        exported = client.get("/metrics").text
    assert service.log is not None and service.log.flush(10)
    assert service.engine is not None
    stored = {p.id: p.text for p in repo.recent_predictions(service.engine)}
    assert stored == {
        "p0": "loved it, write to <EMAIL>",
        "p1": "call me on <PHONE> tonight",
        "p2": "my card <CARD> was charged twice, refund to <IBAN>",
    }
    service.handle_term()
    service.shutdown()

    assert _leaks(state, PLANTED) == []
    logs = caplog.text + capfd.readouterr().err
    assert "privacy.text is redacted" in logs  # the logs were captured at all
    assert not [n for n in PLANTED if n in logs]
    assert not [n for n in (*PLANTED, ATTRIBUTE) if n in exported]
    assert 'adaptd_privacy_redactions_total{kind="email"} 1.0' in exported
    assert 'adaptd_privacy_redactions_total{kind="card"} 1.0' in exported


def test_hashed_mode_logs_no_text_and_takes_it_back_with_feedback(
    tiny_base: Path, adapter: Path, tmp_path: Path, started: list[Service]
) -> None:
    state = tmp_path / "state"
    service = _start(state, tiny_base, adapter, {"text": "hashed"})
    started.append(service)
    served = f"awful service, {EMAIL}"
    with _client(service) as client:
        answer = client.post("/v1/predict", json={"inputs": [{"text": served, "id": "h1"}]})
        assert answer.status_code == 200
        assert service.log is not None and service.log.flush(10)
        assert service.engine is not None
        (row,) = repo.recent_predictions(service.engine)
        key = load_key(PrivacySettings(text="hashed"), state)
        assert row.text is None and row.text_hash == keyed_hash(key, served)
        # Another text for the same prediction is refused, and nothing of the request is stored.
        wrong = client.post(
            "/v1/feedback",
            json={"feedback": [{"id": "h1", "label": "negative", "text": "something else"}]},
        )
        assert wrong.status_code == 422 and "not the text that was served" in wrong.text
        with service.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM feedback")).scalar_one() == 0
        right = client.post(
            "/v1/feedback",
            json={"feedback": [{"id": "h1", "label": "negative", "text": served}]},
        )
        assert right.status_code == 200, right.text
    (labelled,) = repo.labelled_predictions(service.engine)
    assert labelled.prediction.text == "awful service, <EMAIL>"
    assert labelled.true_label == "negative"
    service.handle_term()
    service.shutdown()
    assert _leaks(state, (EMAIL,)) == []


def test_hashed_mode_still_watches_text_drift_on_every_prediction(
    tiny_base: Path, adapter: Path, tmp_path: Path, started: list[Service]
) -> None:
    state = tmp_path / "state"
    service = _start(state, tiny_base, adapter, {"text": "hashed"})
    started.append(service)
    short = [f"good day {i}" for i in range(120)]
    # The shift: long shouting texts with links, as when a new client starts posting.
    long = [f"WORST SERVICE EVER #{i} see http://x.example/{i} " * 4 for i in range(120)]
    with _client(service) as client:
        for batch in (short, long):
            for start in range(0, len(batch), 8):
                inputs = [{"text": t} for t in batch[start : start + 8]]
                assert client.post("/v1/predict", json={"inputs": inputs}).status_code == 200
            assert service.log is not None and service.log.flush(10)
    assert service.engine is not None
    rows = repo.recent_predictions(service.engine)
    assert len(rows) == 240 and all(r.text is None for r in rows)
    # What was kept in place of each text: a few numbers about it, nothing of its words.
    by_length = sorted({r.text_features["length"] for r in rows if r.text_features})
    assert by_length[0] == min(len(t) for t in short) and by_length[-1] == len(long[-1])
    stored = json.dumps([r.text_features for r in rows])
    assert "good" not in stored and "WORST" not in stored and "example" not in stored

    monitors = MonitorsSettings(min_samples=50, reference_window=120, current_window=120)
    active = repo.active_adapter(service.engine)
    assert active is not None
    now = max(r.ts for r in rows) + timedelta(seconds=1)
    reference, current = build_windows(
        service.engine, monitors, active.version, (), now, labels=service.settings.model.labels
    )
    pieces = lambda texts: [t.split() for t in texts]  # noqa: E731 - as the model's tokenizer
    checks = run_checks(reference, current, monitors, now=now, tokenizer=pieces)
    signals = {s.name: s for s in checks}
    for name in ("length", "word_count", "upper_share", "url_share"):
        signal = signals[f"drift.text.{name}"]
        assert signal.status is Status.DRIFT, (name, signal)
        assert signal.n_current == 120
    assert signals["drift.text.share"].status is Status.DRIFT
    # oov_share needs the text under the tokenizer: not judged on hashes alone.
    assert signals["drift.text.oov_share"].status is Status.INSUFFICIENT_DATA


def test_a_bad_key_stops_the_start(
    tiny_base: Path, adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "too short")
    settings = settings_for(tmp_path / "state", tiny_base, privacy={"text": "hashed"})
    store_for(settings).dispose()
    service = Service(settings=settings, role=Role.SERVE)
    from adaptd.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{KEY_ENV}: the privacy hash key has 9 bytes"):
        service.startup()
    service.shutdown()


def _with_pii(examples: list[Example]) -> list[Example]:
    planted = (f"mail {EMAIL}", f"call {PHONE}", f"card {CARD}")
    return [
        Example(
            text=f"{e.text} {planted[i % 3]}" if i % 4 == 0 else e.text,
            label=e.label,
            attributes=e.attributes,
            timestamp=e.timestamp,
        )
        for i, e in enumerate(examples)
    ]


def test_retraining_on_redacted_text_promotes_and_keeps_no_personal_data(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    from adaptd.modeling.tiny import build_tiny_model

    base = build_tiny_model(tmp_path / "bert", hidden=32, layers=2)
    state = tmp_path / "state"
    settings = make_settings(state, base).model_copy(
        update={"privacy": PrivacySettings(text="redacted")}
    )
    (tmp_path / "adapters").mkdir()
    metrics = Metrics(CollectorRegistry())
    registry = StoreRegistry(sqlite_engine, tmp_path / "adapters")
    job = make_job(settings, sqlite_engine, registry, metrics)
    outcome = job.run(
        RetrainRequest(reason="first adapter", examples=_with_pii(keyword_examples(500)))
    )
    assert outcome.status == "promoted", outcome.reason
    reservoir = json.dumps(repo.replay_set(sqlite_engine, RESERVOIR))
    assert "<EMAIL>" in reservoir and "<PHONE>" in reservoir and "<CARD>" in reservoir
    stored = repo.reference_rows(sqlite_engine, outcome.candidate or "")
    assert stored and all(EMAIL not in (r.text or "") for r in stored)
    assert _leaks(state, PLANTED) == []
    db = Path(str(sqlite_engine.url.database))
    assert _leaks(tmp_path / "adapters", PLANTED) == []
    sqlite_engine.dispose()
    assert _leaks(db.parent, PLANTED) == []
    assert metrics.registry.get_sample_value(
        "adaptd_privacy_redactions_total", {"kind": "email"}
    ) == pytest.approx(42)
