"""Probation: after a promotion, is the new adapter doing worse than the one it replaced?

All of probation lives here. Every promotion that replaces a version (a policy's retrain, the
CLI, the HTTP API, an approval) writes a ``running`` row in the store in the promotion's own
transaction (:func:`adaptd.storage.probations.start`, called by the registry), so no promoter is
left out and a restart resumes the probation where it was. Each monitoring check of the control
loop calls :func:`check`, which

- ends it as ``superseded``, without acting, when the active version is no longer the one on
  probation (an operator promoted or rolled back meanwhile: a probation rollback must never undo
  that; the rollback itself is conditional on the version still being active);
- otherwise reads both adapters' records (:func:`observe`, the same measures as the monitors and
  the gates) and asks the pure :func:`decide`, then rolls back (``rolled_back``), confirms at the
  end of the window (``passed``) or waits.

:func:`decide` is pure: it compares what was measured for the previous adapter (before the swap)
and for the new one (since the swap), given when probation started and ``now``. Accuracy is the
labelled accuracy when feedback arrived for both, otherwise the label-free estimate (CBPE) the
monitors computed for each: the new adapter's from this check, the previous one's from the last
check that watched it before the swap. The two are never mixed. A labelled drop rolls back only
when it is beyond the margin *and* significant (Newcombe's interval of the difference, from
:mod:`adaptd.evaluation.measures`, lies below zero), as the golden-set gate judges a drop: a few
dozen unlucky labels do not undo a promotion. A labelled error rate would be one minus the
labelled accuracy, so it is not a separate branch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from sqlalchemy import Engine

from adaptd import failpoints
from adaptd.errors import ActiveChangedError
from adaptd.evaluation import measures
from adaptd.retraining.settings import ProbationSettings
from adaptd.signals import Signal, Status
from adaptd.storage import probations
from adaptd.storage import repository as repo
from adaptd.storage.records import Event, ProbationRecord

logger = logging.getLogger(__name__)

#: the monitors' label-free accuracy estimate, the one signal probation reads
ESTIMATE = "performance.estimated_accuracy"
#: probation's names of the gaps it watches, and the measure of each
GAPS = {"dp_diff": "dp_diff", "accuracy_gap": "accuracy_diff"}
#: how far back to look for the previous adapter's last estimate
ESTIMATE_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the monitors saw of one adapter over a window."""

    #: labelled predictions (the labelled accuracy and the gaps are computed on these)
    samples: int
    labelled_accuracy: float | None = None
    #: predictions served in the monitors' current window (the estimate is computed on these)
    served: int = 0
    estimated_accuracy: float | None = None
    #: bias gaps by name (e.g. ``dp_diff.gender``); lower is better
    bias: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbationDecision:
    action: Literal["keep", "rollback"]
    reason: str
    final: bool = False


def _accuracy(
    old: Observation, new: Observation, min_samples: int
) -> tuple[str, float, float] | None:
    if (
        old.labelled_accuracy is not None
        and new.labelled_accuracy is not None
        and new.samples >= min_samples
    ):
        return "labelled accuracy", old.labelled_accuracy, new.labelled_accuracy
    if (
        old.estimated_accuracy is not None
        and new.estimated_accuracy is not None
        and new.served >= min_samples
    ):
        return "estimated accuracy", old.estimated_accuracy, new.estimated_accuracy
    return None


def decide(
    previous: Observation,
    current: Observation,
    *,
    started: datetime,
    now: datetime,
    settings: ProbationSettings,
) -> ProbationDecision:
    """``rollback`` as soon as enough samples show a regression beyond the configured margins;
    ``keep`` otherwise (``final`` once the window has passed)."""
    over = now - started >= timedelta(seconds=settings.window_s)
    enough = max(current.samples, current.served)
    if enough < settings.min_samples:
        return ProbationDecision(
            action="keep",
            reason=f"{enough} of {settings.min_samples} samples needed to judge"
            + ("; probation window over without enough data" if over else ""),
            final=over,
        )
    accuracy = _accuracy(previous, current, settings.min_samples)
    if accuracy is not None:
        name, old, new = accuracy
        interval = None
        if name == "labelled accuracy":
            _, interval = measures.independent_difference(
                round(new * current.samples), current.samples,
                round(old * previous.samples), previous.samples,
                level=1 - settings.alpha,
            )  # fmt: skip
        significant = interval is None or interval.high < 0
        if old - new > settings.max_accuracy_drop and significant:
            ci = (
                f", {interval.level:.0%} interval of the difference "
                f"[{interval.low:+.3f}, {interval.high:+.3f}]"
                if interval is not None
                else ""
            )
            return ProbationDecision(
                action="rollback",
                reason=f"{name} {new:.3f} vs {old:.3f} of the previous adapter "
                f"(drop {old - new:.3f} > {settings.max_accuracy_drop}{ci})",
            )
    if current.samples >= settings.min_samples:
        for name in sorted(set(previous.bias) & set(current.bias)):
            rise = current.bias[name] - previous.bias[name]
            if rise > settings.max_bias_rise:
                return ProbationDecision(
                    action="rollback",
                    reason=f"{name} {current.bias[name]:.3f} vs {previous.bias[name]:.3f} "
                    f"(rise {rise:.3f} > {settings.max_bias_rise})",
                )
    return ProbationDecision(
        action="keep",
        reason="no regression against the previous adapter"
        + (" over the whole probation window" if over else " so far"),
        final=over,
    )


# ---------------------------------------------------------------------- the store's side


def observe(
    engine: Engine,
    adapter: str,
    labels: Sequence[str],
    *,
    since: datetime | None = None,
    attributes: Sequence[str] = (),
    min_group_size: int,
    positive_label: str | None = None,
    limit: int = 10_000,
) -> Observation:
    """Labelled accuracy and bias gaps (``dp_diff.<attr>``, ``accuracy_gap.<attr>``) of the
    predictions ``adapter`` served (feedback given since ``since``). The measures and the
    minimum group size are the monitors' and the gates' own."""
    rows = repo.labelled_predictions(engine, since=since, adapter=adapter, limit=limit)
    index = {label: i for i, label in enumerate(labels)}
    rows = [r for r in rows if r.true_label in index and r.prediction.label in index]
    if not rows:
        return Observation(samples=0)
    y = np.array([index[r.true_label] for r in rows], dtype=np.int64)
    p = np.array([index[r.prediction.label] for r in rows], dtype=np.int64)
    positive = index.get(positive_label or labels[-1], len(labels) - 1)
    attrs = [r.prediction.attributes for r in rows]
    bias: dict[str, float] = {}
    for attribute in attributes:
        groups = measures.groups_of(attrs, attribute, min_group_size=min_group_size)
        if not groups.judged:
            continue
        for name, measure in GAPS.items():
            gap = measures.GAPS[measure](groups.codes, y, p, positive, len(groups.names))
            if np.isfinite(gap):
                bias[f"{name}.{attribute}"] = gap
    return Observation(samples=len(rows), labelled_accuracy=measures.accuracy(y, p), bias=bias)


def _estimate_now(signals: Sequence[Signal], version: str) -> tuple[float, int] | None:
    for s in signals:
        if s.name == ESTIMATE and s.status is not Status.ERROR and s.value is not None:
            if s.adapter in (None, version):
                return s.value, s.n_current
    return None


def _estimate_before(engine: Engine, version: str, until: datetime) -> tuple[float, int] | None:
    """The last estimate the monitors stored for ``version`` before ``until`` (the swap)."""
    stored = repo.monitor_results(
        engine, since=until - ESTIMATE_LOOKBACK, until=until, signals=[ESTIMATE]
    )
    for r in reversed(stored):
        if r.adapter == version and r.value is not None and r.status != Status.ERROR:
            return r.value, r.n_current or 0
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one check did to the running probation."""

    probation: ProbationRecord
    status: Literal["running", "passed", "rolled_back", "superseded"]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """What :func:`check` needs besides the store (from config, read at each check)."""

    settings: ProbationSettings
    labels: Sequence[str]
    attributes: Sequence[str] = ()
    min_group_size: int
    positive_label: str | None = None


def check(
    engine: Engine,
    now: datetime,
    signals: Sequence[Signal],
    watch: Watch,
    *,
    rollback: Callable[[ProbationRecord, str], object],
) -> Outcome | None:
    """Judge the running probation once (None: no probation is running).

    ``rollback(probation, reason)`` re-activates ``probation.previous`` only if
    ``probation.version`` is still active (it raises :class:`ActiveChangedError` otherwise):
    the composition root binds it to the registry.
    """
    probation = probations.running(engine)
    if probation is None:
        return None
    active = repo.active_adapter(engine)
    if active is None or active.version != probation.version:
        now_active = active.version[:12] if active is not None else "none"
        return _end(engine, probation, "superseded", now, f"the active version is {now_active}")
    old = observe(
        engine,
        probation.previous,
        watch.labels,
        attributes=watch.attributes,
        min_group_size=watch.min_group_size,
        positive_label=watch.positive_label,
    )
    new = observe(
        engine,
        probation.version,
        watch.labels,
        since=probation.started,
        attributes=watch.attributes,
        min_group_size=watch.min_group_size,
        positive_label=watch.positive_label,
    )
    if (estimate := _estimate_now(signals, probation.version)) is not None:
        new = replace(new, estimated_accuracy=estimate[0], served=estimate[1])
    if (before := _estimate_before(engine, probation.previous, probation.started)) is not None:
        old = replace(old, estimated_accuracy=before[0], served=before[1])
    verdict = decide(old, new, started=probation.started, now=now, settings=watch.settings)
    if verdict.action == "rollback":
        reason = f"probation: {verdict.reason}"
        logger.warning("probation of %s failed: %s", probation.version[:12], verdict.reason)
        try:
            rollback(probation, reason)
        except ActiveChangedError as e:
            return _end(engine, probation, "superseded", now, str(e))
        failpoints.reached("probation.rolled_back")
        return _end(engine, probation, "rolled_back", now, verdict.reason)
    if verdict.final:
        return _end(engine, probation, "passed", now, verdict.reason)
    return Outcome(probation=probation, status="running", reason=verdict.reason)


def _end(
    engine: Engine,
    probation: ProbationRecord,
    status: Literal["passed", "rolled_back", "superseded"],
    now: datetime,
    reason: str,
) -> Outcome:
    if probations.finish(engine, probation.id, status=status, now=now, reason=reason):
        kind = {"passed": "probation_passed", "superseded": "probation_ended"}.get(status)
        if kind is not None:  # a rollback already wrote its own event
            verb = "kept" if status == "passed" else "probation ended without action"
            repo.add_events(
                engine,
                [
                    Event(
                        ts=now,
                        kind=kind,
                        source="probation",
                        message=f"{probation.version[:12]} {verb}: {reason}",
                        details={"version": probation.version, "previous": probation.previous},
                    )
                ],
            )
    return Outcome(probation=probation, status=status, reason=reason)
