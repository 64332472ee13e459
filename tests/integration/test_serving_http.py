"""The HTTP API of a running daemon (uvicorn on 127.0.0.1, ephemeral port), tiny model,
SQLite store: predictions, feedback, admin endpoints, and every kind of bad input."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adaptd.config import Settings
from adaptd.service import Service
from adaptd.storage import repository as repo
from tests.unit.serving.helpers import LABELS, register, settings_for, store_for


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.unit.serving.helpers import build_base

    return build_base(tmp_path_factory.mktemp("http-base") / "bert")


@pytest.fixture(scope="module")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.unit.serving.helpers import build_adapter

    root = tmp_path_factory.mktemp("http-adapters")
    return build_adapter(tiny_base, root / "a", seed=1), build_adapter(
        tiny_base, root / "b", seed=2
    )


@pytest.fixture(scope="module")
def daemon(
    tiny_base: Path, adapters: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, list[str]]]:
    settings = settings_for(
        tmp_path_factory.mktemp("http-state"),
        tiny_base,
        server={"max_body_bytes": 4096},
        serving={"log_flush_ms": 60_000.0},  # rows stay buffered: feedback must still find them
    )
    engine = store_for(settings)
    first = register(engine, settings, adapters[0])
    second = register(engine, settings, adapters[1], promote=False)
    engine.dispose()
    service = Service(settings=settings)
    service.startup()
    yield service, [first, second]
    service.handle_term()
    service.shutdown()


@pytest.fixture
def client(daemon: tuple[Service, list[str]]) -> Iterator[httpx.Client]:
    service, _ = daemon
    with httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30) as c:
        yield c


def _predict(client: httpx.Client, inputs: list[Any]) -> httpx.Response:
    return client.post("/v1/predict", json={"inputs": inputs})


def _uid() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- predict


def test_predict_names_the_adapter_and_returns_probabilities(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    _, (first, _) = daemon
    pid = _uid()
    response = _predict(
        client, ["plain string", {"text": "with id", "id": pid, "attributes": {"group": "f"}}]
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["adapter"] for p in predictions] == [first, first]
    assert predictions[1]["id"] == pid and len(predictions[0]["id"]) == 32
    for p in predictions:
        assert set(p["probabilities"]) == set(LABELS)
        assert p["label"] in LABELS and p["score"] == max(p["probabilities"].values())


def test_every_prediction_is_logged(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    service, _ = daemon
    pid = _uid()
    _predict(client, [{"text": "log me", "id": pid, "attributes": {"group": "m"}}])
    assert service.log is not None and service.log.flush(timeout=10)
    assert service.engine is not None
    stored = [p for p in repo.recent_predictions(service.engine, limit=50) if p.id == pid]
    assert len(stored) == 1
    assert stored[0].text == "log me" and stored[0].attributes == {"group": "m"}
    assert stored[0].embedding is not None and len(stored[0].embedding) == 32 * 2


def test_a_reused_client_id_is_a_409_naming_it(client: httpx.Client) -> None:
    pid = _uid()
    assert _predict(client, [{"text": "first", "id": pid}]).status_code == 200
    response = _predict(client, [{"text": "again", "id": pid}])
    assert response.status_code == 409
    assert pid in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "invalid JSON"),
        (b"", 400, "empty body"),
        (b'{"inputs": "text"}', 422, "must be a list"),
        (b'["a"]', 422, "JSON object"),
        (b'{"texts": ["a"]}', 422, "unknown field 'texts'"),
        (b'{"inputs": []}', 422, "empty list"),
        (json.dumps({"inputs": ["x"] * 9}).encode(), 422, "more than the limit of 8"),
        (b'{"inputs": [42]}', 422, "inputs[0]: must be a string"),
        (b'{"inputs": [{"text": 42}]}', 422, "inputs[0].text: must be a string"),
        (b'{"inputs": ["ok", "   "]}', 422, "inputs[1]: empty or whitespace-only"),
        (b'{"inputs": [{"id": "x"}]}', 422, "missing field 'text'"),
        (b'{"inputs": [{"text": "a", "attributes": {"g": 1}}]}', 422, "attributes.g"),
        (b'{"inputs": [{"text": "a", "id": "d"}, {"text": "b", "id": "d"}]}', 409, "used twice"),
        (b'{"inputs": [{"text": "a", "attributes": ""}]}', 422, "attributes: must be an object"),
        (b'{"inputs": ["\\ud800"]}', 422, "inputs[0]: not valid Unicode"),
        (b'{"inputs": ["\\u001c"]}', 422, "empty or whitespace-only"),
        (b'{"inputs": ["\xff\xfe"]}', 400, "UTF-8"),
    ],
)
def test_bad_predict_input_is_a_clear_4xx(
    client: httpx.Client, body: bytes, status: int, needle: str
) -> None:
    response = client.post(
        "/v1/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


def test_a_body_over_the_limit_is_413_even_without_content_length(client: httpx.Client) -> None:
    big = json.dumps({"inputs": ["x" * 5000]}).encode()
    assert client.post("/v1/predict", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield big[:3000]
        yield big[3000:]

    response = client.post("/v1/predict", content=chunks())  # chunked: no Content-Length
    assert response.status_code == 413
    assert "limit of 4096 bytes" in response.json()["detail"]


def test_a_text_far_beyond_max_length_is_truncated_and_counted(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    service, _ = daemon
    assert service.metrics is not None
    before = service.metrics.registry.get_sample_value("adaptd_truncated_inputs_total") or 0
    response = _predict(client, ["word " * 700])
    assert response.status_code == 200
    after = service.metrics.registry.get_sample_value("adaptd_truncated_inputs_total")
    assert after == before + 1


# --------------------------------------------------------------------------- feedback


def test_feedback_for_a_buffered_prediction_is_stored_durably(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    service, _ = daemon
    pid = _uid()
    _predict(client, [{"text": "label me", "id": pid}])
    response = client.post("/v1/feedback", json={"feedback": [{"id": pid, "label": "positive"}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1}
    assert service.engine is not None
    labelled = repo.labelled_predictions(service.engine)
    assert [(lp.prediction.id, lp.true_label) for lp in labelled if lp.prediction.id == pid] == [
        (pid, "positive")
    ]
    again = client.post("/v1/feedback", json={"feedback": [{"id": pid, "label": "positive"}]})
    assert again.status_code == 200, "repeating the same feedback is idempotent"


def test_feedback_for_an_unknown_id_is_404_and_nothing_is_applied(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    service, _ = daemon
    known = _uid()
    _predict(client, [{"text": "known", "id": known}])
    response = client.post(
        "/v1/feedback",
        json={
            "feedback": [{"id": known, "label": "negative"}, {"id": "nope", "label": "positive"}]
        },
    )
    assert response.status_code == 404
    assert "'nope'" in response.json()["detail"]
    assert service.engine is not None
    assert all(lp.prediction.id != known for lp in repo.labelled_predictions(service.engine))


@pytest.mark.parametrize(
    ("feedback", "needle"),
    [
        ([{"id": "a", "label": "meh"}], "not in the label set"),
        ([{"id": "a"}], "missing field 'label'"),
        ([{"id": 3, "label": "positive"}], "feedback[0].id: must be a string"),
    ],
)
def test_bad_feedback_is_422(client: httpx.Client, feedback: list[Any], needle: str) -> None:
    response = client.post("/v1/feedback", json={"feedback": feedback})
    assert response.status_code == 422
    assert needle in response.json()["detail"]


def test_an_id_labelled_twice_in_one_request_is_a_409(client: httpx.Client) -> None:
    twice = [{"id": "a", "label": "positive"}, {"id": "a", "label": "negative"}]
    response = client.post("/v1/feedback", json={"feedback": twice})
    assert response.status_code == 409
    assert "'a' labelled twice" in response.json()["detail"]


# --------------------------------------------------------------------------- admin, status, probes


def test_admin_endpoints_need_the_token(client: httpx.Client) -> None:
    assert client.post("/v1/adapters/rollback").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/adapters/rollback", headers=wrong).status_code == 401


def test_admin_endpoints_are_disabled_without_a_configured_token(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    service, _ = daemon
    settings: Settings = service.settings
    server = settings.server.model_copy(update={"admin_token": None})
    service._settings = settings.model_copy(update={"server": server})
    try:
        response = client.post("/v1/adapters/rollback", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 403
        assert "disabled" in response.json()["detail"]
    finally:
        service._settings = settings


def test_promote_and_rollback_over_http_swap_at_once(
    client: httpx.Client, daemon: tuple[Service, list[str]]
) -> None:
    _, (first, second) = daemon
    auth = {"Authorization": "Bearer s3cret"}
    response = client.post(f"/v1/adapters/{second[:12]}/promote", headers=auth, json={})
    assert response.status_code == 200, response.text
    assert response.json()["serving"] is True
    assert _predict(client, ["after promote"]).json()["predictions"][0]["adapter"] == second
    listed = {a["version"]: a["status"] for a in client.get("/v1/adapters").json()["adapters"]}
    assert listed[second] == "active"

    response = client.post("/v1/adapters/rollback", headers=auth, json={"reason": "test"})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == first
    assert _predict(client, ["after rollback"]).json()["predictions"][0]["adapter"] == first
    status = client.get("/v1/status").json()
    assert status["adapter"]["serving"] == first and status["adapter"]["previous"] == second


def test_promoting_an_unknown_version_is_404(client: httpx.Client) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    response = client.post("/v1/adapters/ffffffff/promote", headers=auth)
    assert response.status_code == 404


def test_probes_status_metrics_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    status = client.get("/v1/status").json()
    assert {"adapter", "queue", "log", "config"} <= set(status)
    assert status["state"] == "running"
    # the tiny base has no pooling config: auto says what it chose and why
    assert status["adapter"]["pooling"] == "mean"
    assert status["adapter"]["pooling_reason"].startswith("auto: encoder (bert) without")
    # where and how it serves: model.device auto; versions share the base by default
    import torch

    assert status["adapter"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert status["adapter"]["dtype"] == "float32"
    assert status["adapter"]["merge_adapters"] is False
    metrics = client.get("/metrics").text
    assert 'adaptd_http_requests_total{code="200",route="/healthz"}' in metrics
    assert "adaptd_active_adapter_info{version=" in metrics
    assert "adaptd_prediction_log_queued_rows" in metrics
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/predict" in paths and "requestBody" in paths["/v1/predict"]["post"]


def test_the_exported_metrics_pass_promtool(client: httpx.Client) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (CI installs Prometheus)")
    _predict(client, ["count me"])
    text = client.get("/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "adaptd_predictions_total",
        "adaptd_batch_size_bucket",
        "adaptd_queue_depth",
        "adaptd_prediction_log_written_total",
        "adaptd_adapter_swaps_total",
        "adaptd_model_load_duration_seconds_bucket",
    ):
        assert name in text
