"""Conditions: comparisons of signals against thresholds, combined with ``all`` / ``any``.

A condition is data, never code: a small tree of three node kinds, validated when the file is
loaded and evaluated by plain arithmetic here.

- ``{signal: NAME, gt|gte|lt|lte: THRESHOLD, status: drift}``: one signal. Every comparison given
  must hold (``gt: 0.3, lt: 0.5`` is a band); ``status: drift`` additionally requires the
  monitor's own test to say drift.
- ``{all: [COND, ...]}`` / ``{any: [COND, ...]}``.

A threshold is a number, or ``{relative_to: reference|validation, delta: D}`` (the signal's
reference value, or the active adapter's validation value, plus D) or ``{..., ratio: R}`` (times R).

Evaluation is three-valued: a signal that is missing, below ``min_samples``, or whose monitor had
insufficient data or failed is *unknown*, and an unknown never trips.

- ``all`` is false when a branch is false, unknown when a branch is unknown, else true: it
  never trips on partial evidence.
- ``any`` is true when a known branch is true, false when the known branches are all false,
  unknown only when every branch is unknown: "any signal we can see". One broken monitor (or
  feedback that never arrives) neither blinds a policy that watches several signals nor keeps
  it from clearing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adaptd.signals import Signal, SignalSpec, Status

#: operator name -> (is a lower bound, is strict)
OPERATORS: dict[str, tuple[bool, bool]] = {
    "gt": (True, True),
    "gte": (True, False),
    "lt": (False, True),
    "lte": (False, False),
}
#: prefixes of the union tags pydantic puts into error locations; loading strips them
TAG_PREFIX = "~"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Relative(Model):
    """A threshold that moves with a baseline instead of a fixed number."""

    relative_to: Literal["reference", "validation"] = Field(
        description="reference: the signal's value on the reference window (from the monitor). "
        "validation: the active adapter's validation value of this signal (from its record)."
    )
    delta: float | None = Field(
        default=None,
        description="Threshold = baseline + delta (e.g. -0.05 for 'five points below').",
    )
    ratio: float | None = Field(
        default=None, gt=0, description="Threshold = baseline * ratio (e.g. 1.5)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> Relative:
        if self.delta is not None and self.ratio is not None:
            raise ValueError("give either delta or ratio, not both")
        for name in ("delta", "ratio"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number (got {value!r})")
        return self

    def resolve(self, baseline: float) -> float:
        if self.ratio is not None:
            return baseline * self.ratio
        return baseline + (self.delta or 0.0)


def _threshold_kind(value: Any) -> str:
    return (
        f"{TAG_PREFIX}relative" if isinstance(value, Mapping | Relative) else f"{TAG_PREFIX}number"
    )


Threshold = Annotated[
    Union[  # noqa: UP007 - Tag needs the Union spelled out
        Annotated[float, Tag(f"{TAG_PREFIX}number")],
        Annotated[Relative, Tag(f"{TAG_PREFIX}relative")],
    ],
    Discriminator(_threshold_kind),
]


class Compare(Model):
    """One signal compared with one or more thresholds."""

    signal: str = Field(description="Signal name, as the monitors export it (see `adaptd check`).")
    gt: Threshold | None = Field(default=None, description="Holds when value > threshold.")
    gte: Threshold | None = Field(default=None, description="Holds when value >= threshold.")
    lt: Threshold | None = Field(default=None, description="Holds when value < threshold.")
    lte: Threshold | None = Field(default=None, description="Holds when value <= threshold.")
    status: Literal["drift"] | None = Field(
        default=None, description="drift: also require the monitor's own test to say drift."
    )

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str, info: ValidationInfo) -> str:
        context = info.context or {}
        known = context.get("known")
        if known is not None and name not in known:
            attribute = _missing_attribute(name, context)
            if attribute is not None:
                configured = ", ".join(context.get("attributes") or []) or "none"
                raise ValueError(
                    f"signal {name!r} needs the request attribute {attribute!r} listed in the "
                    f"config key monitors.attributes (listed now: {configured})"
                )
            close = sorted(k for k in known if k.split(".")[0] == name.split(".")[0])[:5]
            hint = f"; known {name.split('.')[0]}.* signals: {', '.join(close)}" if close else ""
            raise ValueError(f"unknown signal {name!r}{hint}")
        return name

    @field_validator("gt", "gte", "lt", "lte")
    @classmethod
    def _finite(cls, value: float | Relative | None) -> float | Relative | None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"threshold must be a finite number (got {value!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Compare:
        if not self.comparisons() and self.status is None:
            raise ValueError(
                f"condition on {self.signal!r} compares nothing: give gt, gte, lt, lte or status"
            )
        check_satisfiable(self.signal, self.comparisons())
        spec = ((info.context or {}).get("known") or {}).get(self.signal)
        if isinstance(spec, SignalSpec) and spec.bounds is not None:
            low, high = spec.bounds
            for op, threshold in self.comparisons():
                if not isinstance(threshold, float):
                    continue
                lower, strict = OPERATORS[op]
                never = (
                    (threshold > high or (strict and threshold == high))
                    if lower
                    else (threshold < low or (strict and threshold == low))
                )
                if never:
                    raise ValueError(
                        f"{self.signal} {op} {threshold} can never hold: "
                        f"{self.signal} lies in [{low}, {high}]"
                    )
        return self

    def comparisons(self) -> list[tuple[str, float | Relative]]:
        return [(op, v) for op in OPERATORS if (v := getattr(self, op)) is not None]


#: validation-context key: signal names exported once per request attribute, with
#: ``{attribute}`` where the attribute goes (``bias.{attribute}.dp_diff``)
PER_ATTRIBUTE = "per_attribute"


def _missing_attribute(name: str, context: Mapping[str, Any]) -> str | None:
    """The attribute ``name`` is about, when it is a per-attribute signal of an attribute the
    config does not list (such a name is right, the config is what lacks it)."""
    configured = set(context.get("attributes") or ())
    for template in context.get(PER_ATTRIBUTE) or ():
        head, _, tail = str(template).partition("{attribute}")
        middle = name[len(head) : len(name) - len(tail)] if tail else name[len(head) :]
        if (
            name.startswith(head)
            and name.endswith(tail)
            and len(name) > len(head) + len(tail)
            and "." not in middle
            and middle not in configured
        ):
            return middle
    return None


class AllOf(Model):
    all_: tuple[Condition, ...] = Field(
        alias="all", min_length=1, description="Holds when every condition holds."
    )

    @model_validator(mode="after")
    def _consistent(self) -> AllOf:
        by_signal: dict[str, list[tuple[str, float | Relative]]] = {}
        for child in self.all_:
            if isinstance(child, Compare):
                by_signal.setdefault(child.signal, []).extend(child.comparisons())
        for signal, comparisons in by_signal.items():
            check_satisfiable(signal, comparisons)
        return self


class AnyOf(Model):
    any_: tuple[Condition, ...] = Field(
        alias="any", min_length=1, description="Holds when at least one condition holds."
    )


def check_satisfiable(signal: str, comparisons: list[tuple[str, float | Relative]]) -> None:
    """Raise ValueError when comparisons of one signal against fixed numbers exclude each other
    (``gt 0.5`` and ``lt 0.3``): such a policy could never trip, which is always a mistake.

    Relative thresholds are compared only with each other on the same baseline and the same
    ``delta`` form, where the order of the thresholds does not depend on the baseline's value.
    """
    groups: dict[str, list[tuple[str, float]]] = {}
    for op, threshold in comparisons:
        if isinstance(threshold, float):
            groups.setdefault("absolute", []).append((op, threshold))
        elif threshold.ratio is None:
            groups.setdefault(threshold.relative_to, []).append((op, threshold.delta or 0.0))
    for group in groups.values():
        lows = [(v, OPERATORS[op][1], op) for op, v in group if OPERATORS[op][0]]
        highs = [(v, OPERATORS[op][1], op) for op, v in group if not OPERATORS[op][0]]
        if not lows or not highs:
            continue
        low = max(lows, key=lambda x: (x[0], x[1]))
        high = min(highs, key=lambda x: (x[0], not x[1]))
        if low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1])):
            raise ValueError(
                f"contradictory thresholds on {signal!r}: "
                f"{low[2]} {low[0]} and {high[2]} {high[0]} can never both hold"
            )


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, AllOf) or (isinstance(value, Mapping) and "all" in value):
        return f"{TAG_PREFIX}all"
    if isinstance(value, AnyOf) or (isinstance(value, Mapping) and "any" in value):
        return f"{TAG_PREFIX}any"
    if isinstance(value, Compare) or (isinstance(value, Mapping) and "signal" in value):
        return f"{TAG_PREFIX}signal"
    return None


Condition = Annotated[
    Union[  # noqa: UP007 - Tag needs the Union spelled out
        Annotated[AllOf, Tag(f"{TAG_PREFIX}all")],
        Annotated[AnyOf, Tag(f"{TAG_PREFIX}any")],
        Annotated[Compare, Tag(f"{TAG_PREFIX}signal")],
    ],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="a condition is a mapping with one of the keys all, any or signal",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()


def signals_of(condition: Condition) -> set[str]:
    """Every signal name a condition reads."""
    if isinstance(condition, Compare):
        return {condition.signal}
    children = condition.all_ if isinstance(condition, AllOf) else condition.any_
    return set().union(*(signals_of(c) for c in children))


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What one leaf saw: the value and the resolved thresholds, or why it is unknown."""

    signal: str
    value: float | None
    holds: bool | None
    thresholds: Mapping[str, float]
    unknown_reason: str | None = None


def _unknown(signal: str, reason: str) -> Observation:
    return Observation(signal=signal, value=None, holds=None, thresholds={}, unknown_reason=reason)


def observe(
    leaf: Compare,
    signals: Mapping[str, Signal],
    validation: Mapping[str, float],
    min_samples: int | None,
) -> Observation:
    signal = signals.get(leaf.signal)
    if signal is None:
        return _unknown(leaf.signal, "missing")
    if not signal.has_verdict or signal.value is None or not math.isfinite(signal.value):
        return _unknown(leaf.signal, signal.status.value)
    if min_samples is not None and signal.n_current < min_samples:
        return _unknown(leaf.signal, f"n_current {signal.n_current} < min_samples {min_samples}")
    thresholds: dict[str, float] = {}
    for op, threshold in leaf.comparisons():
        if isinstance(threshold, float):
            thresholds[op] = threshold
            continue
        if threshold.relative_to == "reference":
            baseline = signal.reference_value
        else:
            baseline = validation.get(leaf.signal)
        if baseline is None or not math.isfinite(baseline):
            return _unknown(leaf.signal, f"no {threshold.relative_to} value")
        thresholds[op] = threshold.resolve(baseline)
    value = signal.value
    holds = all(_compare(op, value, t) for op, t in thresholds.items())
    if leaf.status == "drift":
        holds = holds and signal.status is Status.DRIFT
    return Observation(signal=leaf.signal, value=value, holds=holds, thresholds=thresholds)


def _compare(op: str, value: float, threshold: float) -> bool:
    if op == "gt":
        return value > threshold
    if op == "gte":
        return value >= threshold
    if op == "lt":
        return value < threshold
    return value <= threshold


def evaluate_condition(
    condition: Condition,
    signals: Mapping[str, Signal],
    validation: Mapping[str, float],
    min_samples: int | None,
    seen: list[Observation],
) -> bool | None:
    """True, False, or None for unknown; every leaf looked at is appended to ``seen``."""
    if isinstance(condition, Compare):
        observation = observe(condition, signals, validation, min_samples)
        seen.append(observation)
        return observation.holds
    children = condition.all_ if isinstance(condition, AllOf) else condition.any_
    results = [evaluate_condition(c, signals, validation, min_samples, seen) for c in children]
    if isinstance(condition, AllOf):
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    if any(r is True for r in results):
        return True
    return None if all(r is None for r in results) else False
