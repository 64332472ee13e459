"""Probation: after a promotion, is the new adapter doing worse than the one it replaced?

Pure: the control loop passes what the monitors measured for the previous adapter (before the
swap) and for the new one (since the swap), when probation started and ``now``. The answer is
``rollback`` with the reason an operator will read in the event, or ``keep``; ``final`` says the
probation window is over and the new adapter is confirmed.

Accuracy is the labelled accuracy when feedback arrived, otherwise the label-free estimate
(CBPE); the two are not mixed: a labelled value is only compared with a labelled value. A
labelled drop rolls back only when it is beyond the margin *and* significant (Newcombe's
interval of the difference, from :mod:`adaptd.evaluation.measures`, lies below zero), as the
golden-set gate judges a drop: a few dozen unlucky labels do not undo a promotion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from adaptd.evaluation import measures
from adaptd.retraining.settings import ProbationSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the monitors saw of one adapter over a window."""

    samples: int
    labelled_accuracy: float | None = None
    estimated_accuracy: float | None = None
    error_rate: float | None = None
    #: bias gaps by name (e.g. ``dp_diff.gender``); lower is better
    bias: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbationDecision:
    action: Literal["keep", "rollback"]
    reason: str
    final: bool = False


def _accuracy(old: Observation, new: Observation) -> tuple[str, float, float] | None:
    if old.labelled_accuracy is not None and new.labelled_accuracy is not None:
        return "labelled accuracy", old.labelled_accuracy, new.labelled_accuracy
    if old.estimated_accuracy is not None and new.estimated_accuracy is not None:
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
    if current.samples < settings.min_samples:
        return ProbationDecision(
            action="keep",
            reason=f"{current.samples} of {settings.min_samples} samples needed to judge"
            + ("; probation window over without enough data" if over else ""),
            final=over,
        )
    accuracy = _accuracy(previous, current)
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
    if previous.error_rate is not None and current.error_rate is not None:
        rise = current.error_rate - previous.error_rate
        if rise > settings.max_error_rate_rise:
            return ProbationDecision(
                action="rollback",
                reason=f"error rate {current.error_rate:.3f} vs {previous.error_rate:.3f} "
                f"(rise {rise:.3f} > {settings.max_error_rate_rise})",
            )
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
