"""Champion vs candidate: the promotion gates, every compared number with its interval.

Pure: it receives the true labels of each evaluation slice and both models' predictions on them
(class indices) and returns a :class:`Verdict` listing every gate with the candidate's value,
the champion's, the difference, their confidence intervals and the outcome. Running the models
is the job's business; the numbers come from :mod:`adaptd.evaluation.measures`, the same
functions the monitors and probation use.

The rules, chosen with ``bench/adaptation/gates.py`` (see ``bench/adaptation/GATES.md``):

- ``min_gain`` (default on ``accuracy@recent``): the candidate must be better on the newest
  held-out labels, the shifted data, with confidence: the lower end of the paired interval of
  the improvement must be above the gain. The burden of proof is on the candidate, so a
  shuffled-label or merely lucky candidate is not promoted.
- ``max_drop`` / ``max_rise`` (default ``accuracy@golden`` ``max_drop: 0.02``, ``alpha: 0.3``):
  the candidate may lose at most the margin on the frozen source-domain sample. It fails when
  the loss is beyond the margin *and* significant (the whole interval of the difference is below
  zero): a golden set of a few hundred rows cannot tell a one-point loss from noise, and a
  non-inferiority test at that size would reject most good candidates. A gate may set its own
  ``alpha``; the golden gate's 0.3 (a one-sided 15 % test) asks less evidence of a loss than
  the recent gate asks of a gain, because a golden set is small and forgetting is what it is
  there to catch.
- A *refinement* (a policy's retrain after its promotion, on the champion's labels and more of
  the same shift) passes ``min_gain`` when it is no worse: its measured gain is at least the
  bound and the interval's lower end above the bound minus ``validation.refinement_margin``.
  Its newest labels are few (the shift's labels are mostly spent by the first run), so a real
  gain of a few points is rarely *surely* positive; a candidate whose whole interval is below
  zero still never passes. No worse holds on the other side too: a refinement is promoted
  without proof of its gain, so it may not trade a measured source loss for it (run 17 promoted
  one at -3.3 on 91 golden tweets that lost 5.1 on the 136 held out). Its ``max_drop`` /
  ``max_rise`` fail on the *measured* change beyond the bound, significant or not, against the
  *baseline*: the adapter its episode started from, the one the shift found serving, when the
  job could score it; else against the champion. Against the champion they keep a first
  retrain's significance test. Forgetting is the source's change from where the episode
  started: measured from each champion it could grow by the bound at every refinement, and a
  champion that measured lucky on the golden rows (it was promoted on them) made its refinement
  look like a loss there (two refinements better on both domains held out were turned away on
  two of 91 golden tweets each; GATES.md, "A refinement's golden gate").
- ``min`` / ``max``: absolute bounds on the candidate's point value (its interval is shown).
- Without a champion (the first adapter) every judged slice must beat always answering the
  majority class: the lower end of the accuracy's Wilson interval above the majority share.
- A gate that cannot be judged (a missing slice, fewer rows than ``min_group_size``, fewer than
  two groups of that size) is ``not_judged``; ``validation.not_judged`` says whether that blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from adaptd.evaluation import measures as m
from adaptd.retraining.settings import (
    GROUP_METRICS,
    LOWER_IS_BETTER,
    GateSettings,
    ValidationSettings,
)
from adaptd.storage.records import AdapterRecord

IntArray = m.IntArray


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: the data to judge it is missing or too small; blocks unless validation.not_judged: pass
    NOT_JUDGED = "not_judged"
    #: does not apply (a relative gate without a champion)
    SKIPPED = "skipped"


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
    outcome: Outcome
    value: float | None = None
    interval: m.Interval | None = None
    champion: float | None = None
    champion_interval: m.Interval | None = None
    #: candidate minus champion (for error rates and gaps too: negative is an improvement)
    difference: float | None = None
    difference_interval: m.Interval | None = None
    threshold: dict[str, float] = field(default_factory=dict)
    n: int = 0
    #: why it failed, was not judged or was skipped
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def iv(i: m.Interval | None) -> list[float] | None:
            return None if i is None else [i.low, i.high]

        return {
            "name": self.name,
            "metric": self.metric,
            "slice": self.slice,
            "outcome": str(self.outcome),
            "passed": self.outcome in (Outcome.PASSED, Outcome.SKIPPED),
            "value": self.value,
            "ci": iv(self.interval),
            "champion": self.champion,
            "champion_ci": iv(self.champion_interval),
            "difference": self.difference,
            "difference_ci": iv(self.difference_interval),
            "threshold": self.threshold,
            "n": self.n,
            "note": self.note,
            "details": self.details,
        }

    def describe(self) -> str:
        """One line an operator reads: value [ci], champion, difference [ci], threshold."""
        text = f"{self.name} {self.outcome}"
        if self.value is not None:
            text += f": {_fmt(self.value)}{_ci(self.interval)}"
        if self.champion is not None:
            text += f" vs champion {_fmt(self.champion)}{_ci(self.champion_interval)}"
        if self.difference is not None:
            text += f", difference {self.difference:+.3f}{_ci(self.difference_interval, True)}"
        baseline = self.details.get("baseline")
        if baseline:
            text += (
                f", {baseline['difference']:+.3f} against the baseline {_fmt(baseline['value'])}"
            )
        if self.threshold:
            text += ", " + ", ".join(f"{k} {_fmt(v)}" for k, v in self.threshold.items())
        if self.note:
            text += f" ({self.note})"
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    candidate: str | None
    champion: str | None
    gates: tuple[GateResult, ...]
    #: validation.not_judged when the verdict was made
    not_judged_policy: str = "block"
    level: float = 0.95
    #: rows of a slice by where they came from, e.g. {"recent": {"holdout": 83, "late": 412}}
    sources: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: the candidate was judged as a refinement of the champion
    refinement: bool = False
    #: a refinement's baseline: the adapter its episode started from, when it was scored
    baseline: str | None = None

    @property
    def not_judged(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if g.outcome is Outcome.NOT_JUDGED)

    @property
    def failing(self) -> tuple[GateResult, ...]:
        """Gates that stop the promotion: failed ones, and not-judged ones when they block."""
        blocking = {Outcome.FAILED}
        if self.not_judged_policy == "block":
            blocking.add(Outcome.NOT_JUDGED)
        return tuple(g for g in self.gates if g.outcome in blocking)

    @property
    def passed(self) -> bool:
        return not self.failing

    def reason(self) -> str:
        return self._outcome() + self._sources()

    def _sources(self) -> str:
        parts = [
            f"{name} = " + " + ".join(f"{n} {source}" for source, n in counts.items())
            for name, counts in self.sources.items()
            if sum(1 for n in counts.values() if n) > 1
        ]
        return f" ({'; '.join(parts)})" if parts else ""

    def _outcome(self) -> str:
        failing = self.failing
        if failing:
            first = failing[0]
            text = f"gate {first.describe()}"
            if first.outcome is Outcome.NOT_JUDGED:
                text += "; validation.not_judged is block"
            if len(failing) > 1:
                text += f" (and {len(failing) - 1} more: {', '.join(g.name for g in failing[1:])})"
            return text
        judged = [g for g in self.gates if g.outcome is Outcome.PASSED]
        text = "passed: " + "; ".join(g.describe() for g in judged) if judged else "passed"
        if self.not_judged:
            names = ", ".join(f"{g.name} ({g.note})" for g in self.not_judged)
            text += f"; not judged, allowed by validation.not_judged: pass: {names}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "reason": self.reason(),
            "confidence_level": self.level,
            "not_judged": {
                "policy": self.not_judged_policy,
                "gates": [g.name for g in self.not_judged],
            },
            "gates": [g.to_dict() for g in self.gates],
            "sources": {name: dict(counts) for name, counts in self.sources.items()},
            "refinement": self.refinement,
            "baseline": self.baseline,
        }


def judged_as_refinement(verdict: Mapping[str, Any] | None) -> bool:
    """Whether a stored verdict (:meth:`Verdict.to_dict`) judged its candidate as a refinement;
    verdicts stored before it said so name ``refinement_margin`` in a gate's threshold."""
    verdict = verdict or {}
    return bool(verdict.get("refinement")) or any(
        "refinement_margin" in (g.get("threshold") or {}) for g in verdict.get("gates", ())
    )


def episode_baseline(
    champion: AdapterRecord,
    adapter: Callable[[str], AdapterRecord],
    since: datetime | None = None,
) -> AdapterRecord | None:
    """The adapter a refinement of ``champion`` measures forgetting from: the one its episode
    started from, up the champion's parents past every adapter a refinement made, to the parent
    of the episode's first retrain. An adapter made before ``since`` (where the episode's labels
    start) already served when the episode began, so it is the start itself (a champion an
    operator rolled back to, say). None when that start is the champion: there is no other
    baseline. ``adapter`` reads a record by version (:func:`repository.get_adapter`); what it
    raises for a missing one, this raises."""
    current, seen = champion, {champion.version}
    while judged_as_refinement(current.verdict) and current.parent not in (None, *seen):
        assert current.parent is not None  # narrowed above, lost in the tuple
        current = adapter(current.parent)
        seen.add(current.version)
    if current.parent is not None and (since is None or current.created >= since):
        current = adapter(current.parent)
    return None if current.version == champion.version else current


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _ci(interval: m.Interval | None, signed: bool = False) -> str:
    if interval is None:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    return f" [{f.format(interval.low)}, {f.format(interval.high)}]"


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True, kw_only=True)
class Judging:
    """What every gate of one verdict shares."""

    level: float
    min_group_size: int
    positive: int
    bootstrap_samples: int
    seed: int
    #: the candidate refines its champion (validation.refinement_margin); None: it does not
    refinement_margin: float | None = None


Statistic = Callable[[IntArray], float]


def _statistic(
    metric: str, data: SliceData, predictions: IntArray, j: Judging, attribute: str
) -> tuple[Statistic, int] | str:
    """The metric as a function of row indices (for the bootstrap), and the rows it uses; or
    why it cannot be judged. Group metrics group the rows by ``attribute``."""
    y = np.asarray(data.y_true, dtype=np.int64)
    p = predictions
    if metric in GROUP_METRICS:
        attributes = data.attributes or tuple({} for _ in y)
        groups = m.groups_of(attributes, attribute, min_group_size=j.min_group_size)
        if not groups.judged:
            return groups.why_not_judged()
        gap = m.GAPS["dp_diff" if metric == "dp_diff" else "accuracy_diff"]
        g = len(groups.names)
        codes = groups.codes
        return (lambda ix: gap(codes[ix], y[ix], p[ix], j.positive, g)), groups.n
    if metric == "accuracy":
        return (lambda ix: m.accuracy(y[ix], p[ix])), len(y)
    if metric == "error_rate":
        return (lambda ix: 1.0 - m.accuracy(y[ix], p[ix])), len(y)
    if metric == "macro_f1":
        return (lambda ix: m.macro_f1(y[ix], p[ix])), len(y)
    raise ValueError(f"unknown metric {metric!r}")


def _interval(
    metric: str, stat: Statistic, y: IntArray, p: IntArray, j: Judging
) -> m.Interval | None:
    if metric in {"accuracy", "error_rate"}:
        correct = int(np.sum(y == p))
        acc = m.wilson(correct, len(y), level=j.level)
        if metric == "accuracy":
            return acc
        return m.Interval(low=1 - acc.high, high=1 - acc.low, level=acc.level, method=acc.method)
    return m.bootstrap_interval(
        stat, len(y), samples=j.bootstrap_samples, seed=j.seed, level=j.level
    )


def _difference(
    metric: str,
    cand_stat: Statistic,
    champ_stat: Statistic,
    y: IntArray,
    cand: IntArray,
    champ: IntArray,
    j: Judging,
) -> tuple[float, m.Interval | None, dict[str, Any]]:
    """Candidate minus champion on the same rows, with a paired interval."""
    if metric in {"accuracy", "error_rate"}:
        paired = m.paired_difference(cand == y, champ == y, level=j.level)
        details = {
            "candidate_only_right": paired.a_only,
            "champion_only_right": paired.b_only,
            "mcnemar_p": m.mcnemar_p(cand == y, champ == y),
        }
        if metric == "accuracy":
            return paired.difference, paired.interval, details
        iv = paired.interval
        flipped = m.Interval(low=-iv.high, high=-iv.low, level=iv.level, method=iv.method)
        return -paired.difference, flipped, details
    everything = np.arange(len(y))
    diff = cand_stat(everything) - champ_stat(everything)
    interval = m.bootstrap_interval(
        lambda ix: cand_stat(ix) - champ_stat(ix),
        len(y),
        samples=j.bootstrap_samples,
        seed=j.seed,
        level=j.level,
    )
    return diff, interval, {}


# --------------------------------------------------------------------------- gates


def _bounds(
    gate: GateSettings,
    value: float,
    difference: float | None,
    interval: m.Interval | None,
    refinement_margin: float | None = None,
    measured: tuple[float, str] | None = None,
) -> tuple[list[str], dict[str, float], list[str]]:
    """(failures, threshold, bounds skipped for want of a champion). ``measured``: a
    refinement's change against its baseline and what to call it (default: ``difference``,
    against the champion)."""
    failures: list[str] = []
    skipped: list[str] = []
    threshold: dict[str, float] = {}
    lower_better = gate.metric in LOWER_IS_BETTER
    if gate.min is not None:
        threshold["min"] = gate.min
        if value < gate.min:
            failures.append(f"{_fmt(value)} is below min {_fmt(gate.min)}")
    if gate.max is not None:
        threshold["max"] = gate.max
        if value > gate.max:
            failures.append(f"{_fmt(value)} is above max {_fmt(gate.max)}")
    relative = {"min_gain": gate.min_gain, "max_drop": gate.max_drop, "max_rise": gate.max_rise}
    for key, bound in relative.items():
        if bound is None:
            continue
        threshold[key] = bound
        if difference is None or interval is None:
            skipped.append(key)
            continue
        if key == "min_gain":
            # improvement is a rise, or a fall for error rates and gaps
            worst_gain = -interval.high if lower_better else interval.low
            if refinement_margin is not None:
                gain = -difference if lower_better else difference
                threshold["refinement_margin"] = refinement_margin
                if gain < bound or not worst_gain > bound - refinement_margin:
                    failures.append(
                        f"a refinement must be no worse than the champion: its gain "
                        f"{gain:+.3f} must be at least {_fmt(bound)} and the "
                        f"{interval.level:.0%} interval start above "
                        f"{bound - refinement_margin:+.3f}, it starts at {worst_gain:+.3f}"
                    )
            elif not worst_gain > bound:
                failures.append(
                    f"not surely better than the champion by more than {_fmt(bound)}: the "
                    f"{interval.level:.0%} interval of the gain starts at {worst_gain:+.3f}"
                )
        else:
            # max_drop / max_rise: the change the bound limits, and whether it is significant
            word, change, significant = (
                ("drop", -difference, interval.high < 0)
                if key == "max_drop"
                else ("rise", difference, interval.low > 0)
            )
            if refinement_margin is not None:
                # no worse: the measured change, against the baseline where there is one
                against, seen = ("the champion", change)
                if measured is not None:
                    seen = -measured[0] if key == "max_drop" else measured[0]
                    against = measured[1]
                if seen > bound:
                    failures.append(
                        f"a refinement must be no worse than {against}: it measures a {word} "
                        f"of {seen:.3f}, more than {_fmt(bound)}"
                    )
                    continue
            if change > bound and significant:
                failures.append(f"significant {word} of {change:.3f}, more than {_fmt(bound)}")
    return failures, threshold, skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class _Names:
    name: str
    metric: str
    slice: str

    def result(self, **values: Any) -> GateResult:
        return GateResult(name=self.name, metric=self.metric, slice=self.slice, **values)


def evaluate_gate(
    gate: GateSettings,
    slices: Mapping[str, SliceData],
    candidate: Mapping[str, Sequence[int]],
    champion: Mapping[str, Sequence[int]] | None,
    j: Judging,
    baseline: Mapping[str, Sequence[int]] | None = None,
) -> GateResult:
    """One gate. ``baseline``: a refinement's baseline's predictions on the slices it was scored
    on; its no-worse rule on ``max_drop`` / ``max_rise`` measures against them."""
    # Group gates are measured on the recent slice, grouped by the gate's attribute.
    group_metric = gate.metric in GROUP_METRICS
    slice_name = "recent" if group_metric else gate.slice
    base = _Names(name=gate.name, metric=gate.metric, slice=gate.slice)
    data = slices.get(slice_name)
    if data is None or not data.y_true:
        return base.result(outcome=Outcome.NOT_JUDGED, note=f"no {slice_name} slice")
    if not group_metric and len(data.y_true) < j.min_group_size:
        return base.result(
            outcome=Outcome.NOT_JUDGED,
            n=len(data.y_true),
            note=f"{slice_name} has {len(data.y_true)} rows, fewer than min_group_size "
            f"{j.min_group_size}",
        )
    y = np.asarray(data.y_true, dtype=np.int64)
    cand = np.asarray(candidate[slice_name], dtype=np.int64)
    made = _statistic(gate.metric, data, cand, j, gate.slice)
    if isinstance(made, str):
        return base.result(outcome=Outcome.NOT_JUDGED, n=len(y), note=made)
    cand_stat, n = made
    everything = np.arange(len(y))
    value = cand_stat(everything)
    interval = _interval(gate.metric, cand_stat, y, cand, j)
    champ_value = champ_interval = difference = diff_interval = None
    details: dict[str, Any] = {}
    if champion is not None:
        champ = np.asarray(champion[slice_name], dtype=np.int64)
        champ_made = _statistic(gate.metric, data, champ, j, gate.slice)
        assert not isinstance(champ_made, str)  # same rows and groups as the candidate's
        champ_stat = champ_made[0]
        champ_value = champ_stat(everything)
        champ_interval = _interval(gate.metric, champ_stat, y, champ, j)
        difference, diff_interval, details = _difference(
            gate.metric, cand_stat, champ_stat, y, cand, champ, j
        )
    measured: tuple[float, str] | None = None
    if (
        j.refinement_margin is not None
        and baseline is not None
        and champion is not None
        and not group_metric
        and len(baseline.get(slice_name, ())) == len(y)
    ):
        base_pred = np.asarray(baseline[slice_name], dtype=np.int64)
        base_made = _statistic(gate.metric, data, base_pred, j, gate.slice)
        assert not isinstance(base_made, str)  # same rows as the candidate's
        base_diff, base_interval, _ = _difference(
            gate.metric, cand_stat, base_made[0], y, cand, base_pred, j
        )
        details["baseline"] = {
            "value": base_made[0](everything),
            "difference": base_diff,
            "difference_ci": [base_interval.low, base_interval.high] if base_interval else None,
        }
        measured = (base_diff, "the baseline (the adapter its episode started from)")
    if not np.isfinite(value):
        return base.result(
            outcome=Outcome.NOT_JUDGED, n=n,
            note="the value is undefined on this slice (no group has both classes?)",
        )  # fmt: skip
    failures, threshold, skipped = _bounds(
        gate, value, difference, diff_interval, j.refinement_margin, measured
    )
    only_relative = gate.min is None and gate.max is None
    note: str | None
    if failures:
        outcome, note = Outcome.FAILED, "; ".join(failures)
    elif only_relative and skipped:
        outcome, note = Outcome.SKIPPED, "no champion to compare with"
    else:
        outcome = Outcome.PASSED
        note = f"{', '.join(skipped)}: no champion to compare with" if skipped else None
    return base.result(
        outcome=outcome,
        value=value,
        interval=interval,
        champion=champ_value,
        champion_interval=champ_interval,
        difference=difference,
        difference_interval=diff_interval,
        threshold=threshold,
        n=n,
        note=note,
        details=details,
    )


def majority_gate(data: SliceData, candidate: Sequence[int], j: Judging) -> GateResult:
    """Without a champion the candidate must beat always answering the most frequent class,
    with confidence: a model trained on noise cannot, however lucky it looks on a small slice."""
    name = f"beats_majority@{data.name}"
    base = _Names(name=name, metric="accuracy", slice=data.name)
    n = len(data.y_true)
    if n < j.min_group_size:
        note = (
            f"no {data.name} slice"
            if n == 0
            else f"{data.name} has {n} rows, fewer than min_group_size {j.min_group_size}"
        )
        return base.result(outcome=Outcome.NOT_JUDGED, n=n, note=note)
    y = np.asarray(data.y_true, dtype=np.int64)
    correct = int(np.sum(np.asarray(candidate, dtype=np.int64) == y))
    interval = m.wilson(correct, n, level=j.level)
    majority = m.majority_share(y)
    passed = interval.low > majority
    return base.result(
        outcome=Outcome.PASSED if passed else Outcome.FAILED,
        value=correct / n,
        interval=interval,
        threshold={"majority": majority},
        n=n,
        note=None
        if passed
        else f"the lower end of its interval is not above the majority class's {majority:.3f}",
        details={"majority_class": int(np.bincount(y).argmax())},
    )


def judge(
    settings: ValidationSettings,
    slices: Mapping[str, SliceData],
    candidate: Mapping[str, Sequence[int]],
    champion: Mapping[str, Sequence[int]] | None,
    *,
    min_group_size: int,
    positive: int,
    candidate_version: str | None = None,
    champion_version: str | None = None,
    expected_slices: Sequence[str] = ("recent", "golden"),
    sources: Mapping[str, Mapping[str, int]] | None = None,
    refinement: bool = False,
    baseline: Mapping[str, Sequence[int]] | None = None,
    baseline_version: str | None = None,
) -> Verdict:
    """Every configured gate; without a champion, the majority-class gate on every slice.

    ``min_group_size`` is ``monitors.min_group_size`` (the one minimum for slices and groups);
    ``positive`` is the class index demographic parity counts as positive; ``sources`` says
    where each slice's rows came from (shown in the verdict). ``refinement``: the candidate
    was trained on its champion's labels and more of the same shift (a policy's refinement);
    its ``min_gain`` gates then ask it to be no worse, not surely better
    (``validation.refinement_margin``), and its ``max_drop`` / ``max_rise`` gates no worse
    measured against ``baseline`` (the predictions of the adapter its episode started from,
    ``baseline_version``, on the slices it was scored on), else against the champion.
    """
    j = Judging(
        level=1 - settings.alpha,
        min_group_size=min_group_size,
        positive=positive,
        bootstrap_samples=settings.bootstrap_samples,
        seed=settings.seed,
        refinement_margin=settings.refinement_margin if refinement else None,
    )
    gates = [
        evaluate_gate(
            g,
            slices,
            candidate,
            champion,
            j if g.alpha is None else replace(j, level=1 - g.alpha),
            baseline if refinement else None,
        )
        for g in settings.gates
    ]
    if champion is None:
        names = list(dict.fromkeys([*expected_slices, *slices]))
        for name in names:
            data = slices.get(name, SliceData(name=name, y_true=()))
            gates.append(majority_gate(data, candidate.get(name, ()), j))
    return Verdict(
        candidate=candidate_version,
        champion=champion_version,
        gates=tuple(gates),
        not_judged_policy=settings.not_judged,
        level=j.level,
        sources=dict(sources or {}),
        refinement=refinement and champion is not None,
        baseline=baseline_version if refinement and baseline is not None else None,
    )
