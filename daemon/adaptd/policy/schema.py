"""The policy file: one or more policies, each a trip condition, hysteresis, limits and an action.

Validated with pydantic (``extra="forbid"``, so a typo fails with its field path); every field has
a description, so ``adaptd policy schema`` is a JSON schema editors can use. Signal names are
checked against the monitors' catalog passed as validation context ``{"known": {name: spec}}``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from adaptd.policy.conditions import Compare, Condition, Model, check_satisfiable, signals_of

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^(\d+(\.\d+)?[smhdw])+$"


def parse_duration(value: Any) -> Any:
    """``"6h"``, ``"1h30m"``, ``"90s"``, ``"2d"`` or a number of seconds; never negative."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"a duration is a string like '6h' or a number of seconds (got {value!r})")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"duration must not be negative (got {value!r})")
        if not re.fullmatch(DURATION_PATTERN, text):
            raise ValueError(
                f"not a duration: {value!r} "
                "(use a number and a unit s, m, h, d or w: '6h', '1h30m')"
            )
        seconds = sum(float(m["n"]) * _UNITS[m["unit"]] for m in _DURATION.finditer(text))
    else:
        raise ValueError(f"a duration is a string like '6h' or a number of seconds (got {value!r})")
    if seconds < 0:
        raise ValueError(f"duration must not be negative (got {value!r})")
    return timedelta(seconds=seconds)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN, "examples": ["6h", "1h30m"]},
                {"type": "number", "minimum": 0, "description": "seconds"},
            ]
        }
    ),
]


class NofM(Model):
    n: int = Field(ge=1, description="Checks out of the last m that must satisfy the condition.")
    m: int = Field(ge=1, le=1000, description="Window of recent checks (with data) looked at.")

    @model_validator(mode="after")
    def _n_within_m(self) -> NofM:
        if self.n > self.m:
            raise ValueError(f"n_of_m: n ({self.n}) must not exceed m ({self.m})")
        return self


#: keys that were renamed, so an old file fails with the new name instead of "unknown key"
RENAMED_OVERRIDES = {
    "replay_fraction": "replay_ratio",
    "max_samples": "max_labels",
}


class RetrainOverrides(Model):
    """Per-policy changes to the `retraining:` section of the config for the run it starts.

    Each key has the name and the meaning of the `retraining.<key>` setting it overrides.
    """

    epochs: int | None = Field(default=None, ge=1, description="Passes over the training set.")
    learning_rate: float | None = Field(default=None, gt=0, description="Peak learning rate.")
    batch_size: int | None = Field(default=None, ge=1, description="Training batch size.")
    replay_ratio: float | None = Field(
        default=None,
        ge=0,
        description="Replayed earlier examples per new training example (against forgetting); "
        "retraining.replay_ratio for this run.",
    )
    group_reweighting: bool | None = Field(
        default=None,
        description="Weight examples so every group of the bias attributes counts equally.",
    )
    max_labels: int | None = Field(
        default=None,
        ge=2,
        description="Newest labelled examples taken from the store; retraining.max_labels for "
        "this run.",
    )
    # Old names: present only to fail with a message naming the new key (hidden from the schema).
    replay_fraction: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    max_samples: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator(*RENAMED_OVERRIDES)
    @classmethod
    def _renamed(cls, value: Any, info: ValidationInfo) -> Any:
        new = RENAMED_OVERRIDES[str(info.field_name)]
        raise ValueError(
            f"{info.field_name!r} is now called {new!r} (one name with the setting "
            f"retraining.{new}, which it overrides)"
        )


class AlertAction(Model):
    type: Literal["alert"] = Field(description="Record an alert event and call the alert hook.")
    severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="Severity passed to the alert hook."
    )


class RetrainAction(Model):
    type: Literal["retrain"] = Field(
        description="Start a retrain run (never two at once); the candidate is validated first."
    )
    min_new_labels: int = Field(
        default=0,
        ge=0,
        description="Wait until this many labelled examples arrived after the shift (counted "
        "from the last check before the trip condition first held) and train on all of them, "
        "plus replay. retraining.min_labels is a floor. 0: act on the trip.",
    )
    retry_growth: float = Field(
        default=1.5,
        gt=1,
        le=100,
        description="After a run that was rejected or failed, try again once the labels since "
        "the shift have grown by this factor (still bounded by max_per_day); refinements wait "
        "for the same growth.",
    )
    refinements: int = Field(
        default=0,
        ge=0,
        le=20,
        description="After a promotion, retrain up to this many more times on every label "
        "since the shift, each once they have grown by retry_growth over the last run's "
        "(bounded by max_per_day, not by the cooldown, which holds back new trips). The gates "
        "judge each refinement against the adapter it refines. 0: the episode ends at the "
        "promotion.",
    )
    overrides: RetrainOverrides = Field(
        default_factory=RetrainOverrides, description="Changes to the retraining config."
    )


class RollbackAction(Model):
    type: Literal["rollback"] = Field(description="Return to the previous adapter.")


ACTION_TYPES = ("alert", "retrain", "rollback")


def _action_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


Action = Annotated[
    AlertAction | RetrainAction | RollbackAction,
    Field(discriminator="type"),
    BeforeValidator(_action_shorthand),
]

POLICY_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class Policy(Model):
    """One policy: when it trips, when it clears, how often it may act, and what it does."""

    name: str = Field(
        pattern=POLICY_NAME,
        description="Unique name (lowercase letters, digits, '.', '_', '-'); a metric label.",
    )
    description: str = Field(default="", description="What the policy is for, for operators.")
    enabled: bool = Field(default=True, description="A disabled policy is loaded but not run.")
    trip: Condition = Field(description="The condition that, with the hysteresis, trips it.")
    clear: Condition | None = Field(
        default=None,
        description="When a tripped policy clears. Default: the trip condition no longer holds.",
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        description="Signals measured on fewer current samples count as insufficient data.",
    )
    for_: int | None = Field(
        default=None,
        alias="for",
        ge=1,
        le=1000,
        description="Trip after this many consecutive checks satisfy the condition (default 1).",
    )
    n_of_m: NofM | None = Field(
        default=None, description="Trip when n of the last m checks satisfy the condition."
    )
    clear_for: int = Field(
        default=1, ge=1, le=1000, description="Consecutive checks the clear condition must hold."
    )
    cooldown: Duration = Field(
        default=timedelta(0),
        description="Do not act again for this long after an alert or rollback, or after a "
        "retrain whose candidate was promoted (even after a clear and a new trip). A rejected "
        "retrain does not start it: retry_growth decides the next attempt.",
    )
    repeat_after: Duration | None = Field(
        default=None,
        description="While still tripped, act again this long after the last action. Default: "
        "once per trip.",
    )
    max_per_day: int | None = Field(
        default=None,
        ge=1,
        description="Budget: at most this many actions (retrain attempts included) in any 24 "
        "hours.",
    )
    action: Action = Field(description="alert, retrain (with overrides) or rollback.")

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if self.for_ is not None and self.n_of_m is not None:
            raise ValueError("give either 'for' or 'n_of_m', not both")
        _check_no_overlap(self.trip, self.clear)
        return self

    @property
    def window(self) -> tuple[int, int]:
        """(n, m): trip when n of the last m checks with data hold."""
        if self.n_of_m is not None:
            return self.n_of_m.n, self.n_of_m.m
        n = self.for_ or 1
        return n, n

    @property
    def signals(self) -> set[str]:
        names = signals_of(self.trip)
        if self.clear is not None:
            names |= signals_of(self.clear)
        return names


def _check_no_overlap(trip: Condition, clear: Condition | None) -> None:
    """A value that both trips and clears a policy makes it flap (trip, clear, trip, ...).

    Checked where it is decidable from the file alone: trip and clear each compare the same
    signal with fixed numbers.
    """
    if not (isinstance(trip, Compare) and isinstance(clear, Compare)):
        return
    if trip.signal != clear.signal or trip.status is not None or clear.status is not None:
        return
    both = [*trip.comparisons(), *clear.comparisons()]
    if not all(isinstance(t, float) for _, t in both):
        return
    try:
        check_satisfiable(trip.signal, both)
    except ValueError:
        return  # disjoint: the gap between them is the hysteresis band
    raise ValueError(
        f"trip and clear overlap on {trip.signal!r}: a value can satisfy both, so the policy "
        "would flap; make the clear thresholds exclude the trip range (e.g. trip gt 0.7, "
        "clear lt 0.6)"
    )


class PolicyFile(Model):
    """A policy file: ``policies:`` followed by a list of policies."""

    policies: tuple[Policy, ...] = Field(
        description="The policies in this file (at least one).",
        json_schema_extra={"minItems": 1},
    )

    @field_validator("policies")
    @classmethod
    def _unique_names(cls, policies: tuple[Policy, ...]) -> tuple[Policy, ...]:
        # Checked here rather than with min_length, which also fires when an item is invalid.
        if not policies:
            raise ValueError("the file defines no policies")
        seen: set[str] = set()
        for policy in policies:
            if policy.name in seen:
                raise ValueError(f"duplicate policy name {policy.name!r}")
            seen.add(policy.name)
        return policies


def json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file (for yaml-language-server and other editors)."""
    schema = PolicyFile.model_json_schema(by_alias=True)
    schema["title"] = "adaptd policy file"
    return schema
