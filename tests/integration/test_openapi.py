"""The OpenAPI document of a running daemon (tiny model, real uvicorn on 127.0.0.1): every $ref
resolves, every status a handler answers is documented with the error shape, /metrics is text;
and schemathesis, with all its checks, finds nothing: 0 failures and 0 answers of 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adaptd.service import Service
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

TOKEN = "schemathesis-token"
#: examples per operation and phase: about 600 requests, under a minute on 2 busy cores
MAX_EXAMPLES = 25


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("openapi")
    base = build_base(root / "bert")
    adapter = build_adapter(base, root / "adapter", seed=1)
    (root / "token").write_text(TOKEN)
    settings = settings_for(
        root / "state",
        base,
        # Both tokens set, to the same value, so one header opens every operation and
        # schemathesis's ignored_auth check can prove that each protected one refuses without.
        server={
            "admin_token": {"file": str(root / "token")},
            "feedback_token": {"file": str(root / "token")},
        },
        serving={"max_text_chars": 500},
    )
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    service = Service(settings=settings)
    service.startup()
    yield service
    service.handle_term()
    service.shutdown()


@pytest.fixture(scope="module")
def document(daemon: Service) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{daemon.http_port}/openapi.json", timeout=30)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/Error" in refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"dangling {ref}"
            node = node[part]


def test_request_bodies_are_documented_with_the_limits_the_parsers_apply(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    predict = paths["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    inputs = predict["schema"]["properties"]["inputs"]
    assert inputs["maxItems"] == 8  # server.max_inputs of settings_for
    assert inputs["items"]["anyOf"][0]["maxLength"] == 500  # serving.max_text_chars
    feedback = paths["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
    label = feedback["schema"]["properties"]["feedback"]["items"]["properties"]["label"]
    assert label["enum"] == ["negative", "positive"]
    assert paths["/v1/feedback"]["post"]["security"] == [{"bearer": []}]


def test_error_codes_are_documented_with_the_error_shape(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/feedback"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "404", "409", "413", "422", "503"}
    for code in ("401", "404", "422"):
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_schemathesis_with_all_checks_finds_no_failure_and_no_5xx(
    daemon: Service, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{daemon.http_port}/openapi.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            url,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tail = result.stdout[-4000:]
    assert result.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts is not None, tail
    assert counts.group(1) == counts.group(2), tail  # no case failed
    # Every phase ran and sent requests (a run that tested nothing passes too).
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, tail
    assert daemon.metrics is not None
    answered: dict[str, float] = {}
    for family in daemon.metrics.registry.collect():
        if family.name == "adaptd_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    code = sample.labels["code"]
                    answered[code] = answered.get(code, 0.0) + sample.value
    assert sum(answered.values()) > 300, answered
    assert not {code for code in answered if code.startswith("5")}, answered
    assert {"200", "401", "422"} <= set(answered), answered
