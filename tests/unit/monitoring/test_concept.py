from __future__ import annotations

from adaptd.monitoring.detectors.concept import concept_drift
from adaptd.signals import Status
from tests.unit.monitoring.factory import by_name, context, window


def test_error_rate_jump_fires_adwin() -> None:
    s = by_name(
        concept_drift(
            context(), window(2000, seed=1, error_rate=0.1), window(1000, seed=2, error_rate=0.3)
        )
    )
    assert s["concept.drift"].value == 1.0 and s["concept.drift"].status is Status.DRIFT
    assert s["concept.error_rate"].reference_value is not None
    assert s["concept.error_rate"].value > s["concept.error_rate"].reference_value


def test_stable_error_rate_is_quiet() -> None:
    s = by_name(
        concept_drift(
            context(), window(2000, seed=1, error_rate=0.1), window(1000, seed=2, error_rate=0.1)
        )
    )
    assert s["concept.drift"].value == 0.0 and s["concept.drift"].status is Status.OK


def test_without_labels_no_verdict() -> None:
    signals = concept_drift(context(), window(2000, seed=1), window(1000, seed=2, labelled=0.0))
    assert {x.status for x in signals} == {Status.INSUFFICIENT_DATA}
