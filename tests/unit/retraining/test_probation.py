from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from adaptd.retraining.probation import Observation, decide
from adaptd.retraining.settings import ProbationSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CFG = ProbationSettings(window_s=3600, min_samples=100, max_accuracy_drop=0.02)


def test_labelled_accuracy_drop_rolls_back_with_reason() -> None:
    d = decide(
        Observation(samples=500, labelled_accuracy=0.85),
        Observation(samples=200, labelled_accuracy=0.78),
        started=T0,
        now=T0 + timedelta(minutes=5),
        settings=CFG,
    )
    assert d.action == "rollback"
    assert d.reason == (
        "labelled accuracy 0.780 vs 0.850 of the previous adapter (drop 0.070 > 0.02, "
        "95% interval of the difference [-0.139, -0.008])"
    )


def test_labelled_drop_within_noise_keeps_the_adapter() -> None:
    # 5 points lower on 100 labels: beyond the margin, but the interval reaches above zero.
    d = decide(
        Observation(samples=500, labelled_accuracy=0.85),
        Observation(samples=100, labelled_accuracy=0.80),
        started=T0,
        now=T0 + timedelta(minutes=5),
        settings=CFG,
    )
    assert d.action == "keep"


def test_estimated_accuracy_used_when_no_labels_and_not_mixed() -> None:
    old = Observation(samples=500, labelled_accuracy=0.9, served=800, estimated_accuracy=0.88)
    new = Observation(samples=0, served=200, estimated_accuracy=0.80)
    d = decide(old, new, started=T0, now=T0, settings=CFG)
    assert d.action == "rollback" and d.reason.startswith("estimated accuracy 0.800 vs 0.880")


def test_an_estimate_on_too_few_served_predictions_does_not_roll_back() -> None:
    old = Observation(samples=0, served=800, estimated_accuracy=0.88)
    few = Observation(samples=0, served=CFG.min_samples - 1, estimated_accuracy=0.5)
    assert decide(old, few, started=T0, now=T0, settings=CFG).action == "keep"


def test_labels_below_the_minimum_fall_back_to_the_estimate() -> None:
    # 20 labels say nothing yet; the estimate over 300 served predictions does.
    old = Observation(samples=500, labelled_accuracy=0.9, served=800, estimated_accuracy=0.9)
    new = Observation(samples=20, labelled_accuracy=0.95, served=300, estimated_accuracy=0.8)
    d = decide(old, new, started=T0, now=T0, settings=CFG)
    assert d.action == "rollback" and d.reason.startswith("estimated accuracy")


def test_a_bias_rise_rolls_back() -> None:
    base = Observation(samples=500, bias={"dp_diff.gender": 0.05})
    worse_bias = Observation(samples=500, bias={"dp_diff.gender": 0.2})
    assert decide(base, worse_bias, started=T0, now=T0, settings=CFG).reason.startswith(
        "dp_diff.gender 0.200 vs 0.050"
    )


def test_too_few_samples_keeps_and_window_end_is_final() -> None:
    old = Observation(samples=500, labelled_accuracy=0.9)
    new = Observation(samples=10, labelled_accuracy=0.1)
    early = decide(old, new, started=T0, now=T0 + timedelta(minutes=1), settings=CFG)
    assert early.action == "keep" and not early.final
    good = Observation(samples=300, labelled_accuracy=0.9)
    late = decide(old, good, started=T0, now=T0 + timedelta(hours=2), settings=CFG)
    assert late.action == "keep" and late.final


@given(old=st.floats(0, 1), new=st.floats(0, 1), n=st.integers(0, 1000))
def test_deterministic_and_only_rolls_back_beyond_margin(old: float, new: float, n: int) -> None:
    a = Observation(samples=1000, labelled_accuracy=old)
    b = Observation(samples=n, labelled_accuracy=new)
    first = decide(a, b, started=T0, now=T0, settings=CFG)
    assert first == decide(a, b, started=T0, now=T0, settings=CFG)
    if first.action == "rollback":
        assert old - new > CFG.max_accuracy_drop and n >= CFG.min_samples
