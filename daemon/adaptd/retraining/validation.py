"""Champion vs candidate: gates declared in config, and a paired significance test.

Pure: it receives the true labels of each evaluation slice and both models' predictions on them
(class indices), and returns a :class:`Verdict` listing every gate with its value, the champion's
value, the threshold and whether it passed. Running the models is the job's business.

Gates follow TFX's Evaluator and MLflow's ``MetricThreshold``: absolute bounds (``min``, ``max``)
and bounds relative to the champion (``max_drop``, ``max_rise``), per metric and per slice. On
top of them, the candidate must beat the champion on the recent slice by a margin that is
statistically significant (exact McNemar test or paired bootstrap), so noise is not promoted.
Without a champion (the very first adapter) only absolute gates apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from adaptd.retraining.settings import GateSettings, ValidationSettings

#: groups smaller than this are left out of bias gaps (a gap over 3 examples is noise)
MIN_GROUP_SIZE = 10
HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "error_rate": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceData:
    """An evaluation slice: true class indices and each example's group attributes."""

    name: str
    y_true: tuple[int, ...]
    attributes: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    name: str
    metric: str
    slice: str
    value: float | None
    champion: float | None
    threshold: dict[str, float]
    passed: bool
    #: why the gate could not be evaluated (no champion, no golden set); it then passes
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    candidate: str | None
    champion: str | None
    passed: bool
    gates: tuple[GateResult, ...]

    @property
    def failing(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def reason(self) -> str:
        failing = self.failing
        if not failing:
            return "all gates passed"
        first = failing[0]
        text = f"gate {first.name} failed: {_fmt(first.value)}"
        if first.champion is not None:
            text += f" (champion {_fmt(first.champion)})"
        text += ", threshold " + ", ".join(f"{k} {_fmt(v)}" for k, v in first.threshold.items())
        if len(failing) > 1:
            text += f" (and {len(failing) - 1} more)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "reason": self.reason(),
            "gates": [asdict(g) for g in self.gates],
        }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------- metrics


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float((y == p).mean()) if len(y) else float("nan")


def macro_f1(y: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = int(((p == c) & (y == c)).sum())
        fp = int(((p == c) & (y != c)).sum())
        fn = int(((p != c) & (y == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def _groups(attributes: Sequence[Mapping[str, str]], attribute: str) -> dict[str, np.ndarray]:
    index: dict[str, list[int]] = {}
    for i, attrs in enumerate(attributes):
        if (group := attrs.get(attribute)) is not None:
            index.setdefault(group, []).append(i)
    return {g: np.array(ix) for g, ix in index.items() if len(ix) >= MIN_GROUP_SIZE}


def dp_diff(
    p: np.ndarray, attributes: Sequence[Mapping[str, str]], attribute: str, n_classes: int
) -> float | None:
    """Demographic parity difference: the largest gap, over classes, in the rate at which groups
    are predicted that class (for two classes: the usual positive-rate gap)."""
    groups = _groups(attributes, attribute)
    if len(groups) < 2:
        return None
    gaps = []
    for c in range(n_classes):
        rates = [float((p[ix] == c).mean()) for ix in groups.values()]
        gaps.append(max(rates) - min(rates))
    return max(gaps)


def accuracy_gap(
    y: np.ndarray, p: np.ndarray, attributes: Sequence[Mapping[str, str]], attribute: str
) -> float | None:
    groups = _groups(attributes, attribute)
    if len(groups) < 2:
        return None
    rates = [accuracy(y[ix], p[ix]) for ix in groups.values()]
    return max(rates) - min(rates)


def metric_value(
    metric: str, data: SliceData, predictions: Sequence[int], n_classes: int, attribute: str
) -> float | None:
    y = np.asarray(data.y_true)
    p = np.asarray(predictions)
    if len(y) == 0:
        return None
    if metric == "accuracy":
        return accuracy(y, p)
    if metric == "error_rate":
        return 1.0 - accuracy(y, p)
    if metric == "macro_f1":
        return macro_f1(y, p, n_classes)
    if metric == "dp_diff":
        return dp_diff(p, data.attributes, attribute, n_classes)
    if metric == "accuracy_gap":
        return accuracy_gap(y, p, data.attributes, attribute)
    raise ValueError(f"unknown metric {metric!r}")


# --------------------------------------------------------------------------- significance


def mcnemar_p(candidate_correct: np.ndarray, champion_correct: np.ndarray) -> float:
    """One-sided exact McNemar: p of the candidate winning at least this many discordant pairs
    if both models were equally good."""
    from scipy.stats import binomtest

    wins = int((candidate_correct & ~champion_correct).sum())
    losses = int((~candidate_correct & champion_correct).sum())
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def bootstrap_p(
    candidate_correct: np.ndarray,
    champion_correct: np.ndarray,
    *,
    margin: float,
    samples: int,
    seed: int,
) -> float:
    """Paired bootstrap: the share of resamples where the candidate's accuracy gain is not above
    ``margin`` (Koehn 2004's test for MT systems, used the same way here)."""
    rng = np.random.default_rng(seed)
    diff = candidate_correct.astype(np.float64) - champion_correct.astype(np.float64)
    n = len(diff)
    idx = rng.integers(0, n, size=(samples, n))
    deltas = diff[idx].mean(axis=1)
    return float((deltas <= margin).mean())


def significance_gate(
    settings: ValidationSettings,
    recent: SliceData,
    candidate: Sequence[int],
    champion: Sequence[int] | None,
) -> GateResult:
    name = f"significance@{recent.name}"
    threshold = {"max": settings.alpha}
    if champion is None:
        return baseline_gate(settings, recent, candidate)
    y = np.asarray(recent.y_true)
    cand = np.asarray(candidate) == y
    champ = np.asarray(champion) == y
    delta = float(cand.mean() - champ.mean())
    if settings.significance == "bootstrap":
        p = bootstrap_p(
            cand,
            champ,
            margin=settings.min_improvement,
            samples=settings.bootstrap_samples,
            seed=settings.seed,
        )
    else:
        p = mcnemar_p(cand, champ)
    passed = p < settings.alpha and delta > settings.min_improvement
    return GateResult(
        name=name,
        metric="p_value",
        slice=recent.name,
        value=p,
        champion=None,
        threshold=threshold,
        passed=passed,
        details={
            "test": settings.significance,
            "accuracy_gain": delta,
            "min_improvement": settings.min_improvement,
            "n": len(y),
        },
    )


def baseline_gate(
    settings: ValidationSettings, recent: SliceData, candidate: Sequence[int]
) -> GateResult:
    """Without a champion, the candidate must still beat always answering the majority class,
    significantly (one-sided exact binomial test): a model trained on noise cannot, however
    lucky its accuracy looks on a small holdout."""
    from scipy.stats import binomtest

    y = np.asarray(recent.y_true)
    correct = int((np.asarray(candidate) == y).sum())
    majority = float(np.bincount(y).max() / len(y))
    p = float(binomtest(correct, len(y), majority, alternative="greater").pvalue)
    return GateResult(
        name=f"significance@{recent.name}",
        metric="p_value",
        slice=recent.name,
        value=p,
        champion=None,
        threshold={"max": settings.alpha},
        passed=p < settings.alpha,
        details={"test": "binomial_vs_majority", "majority_accuracy": majority, "n": len(y)},
    )


# --------------------------------------------------------------------------- gates


def _check(
    gate: GateSettings, value: float, champion: float | None
) -> tuple[bool, dict[str, float]]:
    threshold: dict[str, float] = {}
    passed = True
    if gate.min is not None:
        threshold["min"] = gate.min
        passed &= value >= gate.min
    if gate.max is not None:
        threshold["max"] = gate.max
        passed &= value <= gate.max
    if champion is not None:
        if gate.max_drop is not None:
            threshold["max_drop"] = gate.max_drop
            passed &= value >= champion - gate.max_drop - 1e-12
        if gate.max_rise is not None:
            threshold["max_rise"] = gate.max_rise
            passed &= value <= champion + gate.max_rise + 1e-12
    return bool(passed), threshold


def evaluate_gate(
    gate: GateSettings,
    slices: Mapping[str, SliceData],
    candidate: Mapping[str, Sequence[int]],
    champion: Mapping[str, Sequence[int]] | None,
    n_classes: int,
) -> GateResult:
    group_metric = gate.metric in {"dp_diff", "accuracy_gap"}
    # Bias gates are measured on the recent slice, grouped by the gate's attribute.
    slice_name = "recent" if group_metric else gate.slice
    name = f"{gate.metric}@{gate.slice}"
    data = slices.get(slice_name)
    if data is None or not data.y_true:
        return GateResult(
            name=name,
            metric=gate.metric,
            slice=gate.slice,
            value=None,
            champion=None,
            threshold={},
            passed=True,
            skipped=f"no {slice_name} data",
        )
    value = metric_value(gate.metric, data, candidate[slice_name], n_classes, gate.slice)
    champ = (
        metric_value(gate.metric, data, champion[slice_name], n_classes, gate.slice)
        if champion is not None
        else None
    )
    if value is None:
        return GateResult(
            name=name,
            metric=gate.metric,
            slice=gate.slice,
            value=None,
            champion=champ,
            threshold={},
            passed=True,
            skipped=f"fewer than two groups of {MIN_GROUP_SIZE}+ examples in {gate.slice!r}",
        )
    passed, threshold = _check(gate, value, champ)
    only_relative = gate.min is None and gate.max is None
    return GateResult(
        name=name,
        metric=gate.metric,
        slice=gate.slice,
        value=value,
        champion=champ,
        threshold=threshold,
        passed=passed,
        skipped="no champion to compare with" if only_relative and champ is None else None,
    )


def judge(
    settings: ValidationSettings,
    slices: Mapping[str, SliceData],
    candidate: Mapping[str, Sequence[int]],
    champion: Mapping[str, Sequence[int]] | None,
    *,
    n_classes: int,
    candidate_version: str | None = None,
    champion_version: str | None = None,
    significance: Literal["required", "skip"] = "required",
) -> Verdict:
    """Every configured gate, then the significance test on the recent slice."""
    gates = [evaluate_gate(g, slices, candidate, champion, n_classes) for g in settings.gates]
    if significance == "required" and settings.significance != "none" and "recent" in slices:
        gates.append(
            significance_gate(
                settings,
                slices["recent"],
                candidate["recent"],
                champion["recent"] if champion is not None else None,
            )
        )
    return Verdict(
        candidate=candidate_version,
        champion=champion_version,
        passed=all(g.passed for g in gates),
        gates=tuple(gates),
    )
