from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.retraining.settings import GateSettings, ValidationSettings
from adaptd.retraining.validation import (
    SliceData,
    bootstrap_p,
    dp_diff,
    judge,
    mcnemar_p,
)


def flip(y: list[int], share: float, seed: int) -> list[int]:
    """Predictions that get ``1 - share`` of ``y`` right."""
    rng = random.Random(seed)
    out = list(y)
    for i in rng.sample(range(len(y)), round(share * len(y))):
        out[i] = 1 - out[i]
    return out


RNG = random.Random(7)
Y_RECENT = [RNG.randrange(2) for _ in range(400)]
Y_GOLDEN = [RNG.randrange(2) for _ in range(300)]
SLICES = {
    "recent": SliceData(
        name="recent",
        y_true=tuple(Y_RECENT),
        attributes=tuple({"gender": ("male", "female")[i % 2]} for i in range(400)),
    ),
    "golden": SliceData(name="golden", y_true=tuple(Y_GOLDEN)),
}


def preds(recent_err: float, golden_err: float, seed: int = 0) -> dict[str, list[int]]:
    return {"recent": flip(Y_RECENT, recent_err, seed), "golden": flip(Y_GOLDEN, golden_err, seed)}


def test_better_candidate_passes_every_gate() -> None:
    verdict = judge(
        ValidationSettings(), SLICES, preds(0.10, 0.10, 1), preds(0.30, 0.10, 2), n_classes=2
    )
    assert verdict.passed, verdict.reason()
    names = [g.name for g in verdict.gates]
    assert names == [
        "accuracy@recent",
        "accuracy@recent",
        "accuracy@golden",
        "significance@recent",
    ]
    sig = verdict.gates[-1]
    assert sig.value is not None and sig.value < 0.001
    assert sig.details["accuracy_gain"] == pytest.approx(0.2, abs=0.05)


def test_forgetting_on_golden_fails_with_the_gate_named() -> None:
    verdict = judge(
        ValidationSettings(), SLICES, preds(0.10, 0.25, 1), preds(0.30, 0.10, 2), n_classes=2
    )
    assert not verdict.passed
    assert [g.name for g in verdict.failing] == ["accuracy@golden"]
    reason = verdict.reason()
    assert reason.startswith("gate accuracy@golden failed: 0.75")
    assert "champion 0.9" in reason and "max_drop 0.01" in reason


def test_noise_is_not_promoted() -> None:
    # The same quality with different mistakes: not significantly better.
    verdict = judge(
        ValidationSettings(), SLICES, preds(0.20, 0.10, 1), preds(0.21, 0.10, 2), n_classes=2
    )
    assert [g.name for g in verdict.failing] == ["significance@recent"]


def test_shuffled_label_candidate_is_rejected_with_and_without_champion() -> None:
    rng = random.Random(3)
    shuffled = {k: [rng.randrange(2) for _ in v.y_true] for k, v in SLICES.items()}
    with_champion = judge(ValidationSettings(), SLICES, shuffled, preds(0.2, 0.2), n_classes=2)
    first = judge(ValidationSettings(), SLICES, shuffled, None, n_classes=2)
    assert not with_champion.passed and not first.passed
    assert [g.name for g in first.failing] == ["accuracy@recent", "significance@recent"]
    assert first.failing[0].threshold == {"min": 0.6}
    assert first.failing[1].details["test"] == "binomial_vs_majority"


def test_lucky_noise_without_champion_fails_against_the_majority_baseline() -> None:
    # 62 % accuracy on 50 examples where 60 % are one class: passes min 0.6, not significance.
    y = [1] * 30 + [0] * 20
    cand = [1] * 50
    cand[30] = 0  # one more right than the majority answer
    slices = {"recent": SliceData(name="recent", y_true=tuple(y))}
    gates = [GateSettings(metric="accuracy", slice="recent", min=0.6)]
    verdict = judge(ValidationSettings(gates=gates), slices, {"recent": cand}, None, n_classes=2)
    assert verdict.gates[0].passed and not verdict.passed
    assert verdict.failing[0].name == "significance@recent"


def test_without_champion_relative_gates_and_significance_are_skipped() -> None:
    verdict = judge(ValidationSettings(), SLICES, preds(0.1, 0.1), None, n_classes=2)
    assert verdict.passed
    skipped = [g.name for g in verdict.gates if g.skipped]
    assert skipped == ["accuracy@recent", "accuracy@golden"]
    assert verdict.gates[-1].details["test"] == "binomial_vs_majority"


def test_bias_gate_on_attribute_slice() -> None:
    # The candidate predicts class 1 for every male example: a huge parity gap.
    cand = preds(0.1, 0.1)
    cand["recent"] = [1 if i % 2 == 0 else y for i, y in enumerate(cand["recent"])]
    gates = [GateSettings(metric="dp_diff", slice="gender", max=0.1)]
    verdict = judge(
        ValidationSettings(gates=gates, significance="none"), SLICES, cand, None, n_classes=2
    )
    assert not verdict.passed
    assert verdict.gates[0].name == "dp_diff@gender" and (verdict.gates[0].value or 0) > 0.3


def test_gate_without_bounds_or_with_wrong_slice_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="has no bound"):
        GateSettings(metric="accuracy", slice="recent")
    with pytest.raises(ValueError, match="take an attribute slice"):
        GateSettings(metric="dp_diff", slice="recent", max=0.1)


def test_bootstrap_and_mcnemar_agree_on_clear_cases() -> None:
    y = np.array(Y_RECENT)
    good = np.array(flip(Y_RECENT, 0.1, 1)) == y
    bad = np.array(flip(Y_RECENT, 0.3, 2)) == y
    assert mcnemar_p(good, bad) < 0.001
    assert bootstrap_p(good, bad, margin=0.0, samples=1000, seed=0) < 0.01
    assert mcnemar_p(bad, good) > 0.99
    assert bootstrap_p(bad, good, margin=0.0, samples=1000, seed=0) > 0.99
    settings_ = ValidationSettings(significance="bootstrap", bootstrap_samples=500)
    verdict = judge(settings_, SLICES, preds(0.1, 0.1, 1), preds(0.3, 0.1, 2), n_classes=2)
    assert verdict.passed and verdict.gates[-1].details["test"] == "bootstrap"


def test_verdict_serialises_every_gate() -> None:
    verdict = judge(
        ValidationSettings(), SLICES, preds(0.1, 0.1, 1), preds(0.3, 0.1, 2), n_classes=2
    )
    doc = verdict.to_dict()
    assert doc["passed"] is True and len(doc["gates"]) == 4
    assert set(doc["gates"][0]) >= {"name", "value", "champion", "threshold", "passed"}


def test_dp_diff_ignores_tiny_groups() -> None:
    p = np.array([1] * 20 + [0] * 3)
    attrs = [{"g": "a"}] * 20 + [{"g": "b"}] * 3
    assert dp_diff(p, attrs, "g", 2) is None


@settings(max_examples=30, deadline=None)
@given(err=st.floats(0.0, 0.5), bound=st.floats(0.0, 1.0), looser=st.floats(0.0, 0.5))
def test_a_gate_that_passes_also_passes_when_loosened(
    err: float, bound: float, looser: float
) -> None:
    cand = preds(err, err, 5)
    strict = ValidationSettings(gates=[GateSettings(metric="accuracy", slice="recent", min=bound)])
    loose = ValidationSettings(
        gates=[GateSettings(metric="accuracy", slice="recent", min=max(0.0, bound - looser))]
    )
    a = judge(strict, SLICES, cand, None, n_classes=2)
    b = judge(loose, SLICES, cand, None, n_classes=2)
    assert not a.passed or b.passed
