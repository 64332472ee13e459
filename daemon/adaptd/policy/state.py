"""Policy state: what a policy remembers between checks, and its JSON form in the store.

The state is persisted after every check (``repository.save_policy_states``), so a restart
neither forgets a pending trip (the recent check results are kept) nor fires twice (the time of
the last action and the actions of the last 24 hours are kept).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from adaptd.errors import ConfigError

logger = logging.getLogger(__name__)

#: bump when the JSON form changes incompatibly; older states are then started afresh
STATE_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyState:
    #: results (True/False) of the trip condition at recent checks that had data, oldest first
    history: tuple[bool, ...] = ()
    tripped: bool = False
    tripped_at: datetime | None = None
    #: consecutive checks on which the clear condition held while tripped
    clear_streak: int = 0
    #: tripped, and the action has not run yet (cooldown or budget held it back)
    action_due: bool = False
    last_action: datetime | None = None
    #: times of the actions of the last 24 hours (the daily budget is a rolling window)
    recent_actions: tuple[datetime, ...] = ()
    #: the last suppression reported, so a long one is one event, not one per check
    last_suppression: str | None = None
    last_check: datetime | None = None
    #: when the cooldown started: the last alert or rollback, or the last promotion a retrain
    #: brought (a rejected candidate does not start it)
    cooldown_from: datetime | None = None
    # --- the evidence a retrain waits for (labels counted as the store's running total) ------
    #: the last calm check (nothing held since), and the labelled total then
    calm_at: datetime | None = None
    calm_labels: int | None = None
    #: the calm check before it: where an episode's labels start (see policy.engine)
    baseline_at: datetime | None = None
    baseline_labels: int | None = None
    #: where the current episode's labels start (copied from the baseline when it trips; None
    #: with a tripped policy: no earlier check was seen, every stored label counts)
    episode_since: datetime | None = None
    episode_labels: int | None = None
    #: labels since the shift counted at the last check, and how many the next attempt needs
    new_labels: int | None = None
    labels_needed: int | None = None
    #: labels since the shift when the last retrain started (the base of retry_growth)
    attempt_labels: int | None = None
    #: since when the due retrain has been waiting for labels (None: not waiting)
    waiting_since: datetime | None = None
    # --- refinements: after a promotion, the episode's labels keep training (see policy.engine)
    #: refinements left in this episode (None: not refining)
    refine_left: int | None = None
    #: where the refined episode's labels start, and the labelled total then
    refine_since: datetime | None = None
    refine_labels: int | None = None
    #: labels since the shift the next refinement needs (None: a refinement is running)
    refine_needed: int | None = None

    @property
    def refining(self) -> bool:
        return self.refine_left is not None

    @property
    def phase(self) -> str:
        """idle, pending (the condition held on a recent check), tripped, or refining (after a
        promotion, waiting for the episode's labels to grow for the next refinement)."""
        if self.tripped:
            return "tripped"
        if any(self.history):
            return "pending"
        return "refining" if self.refining else "idle"

    @property
    def pending(self) -> int:
        """Recent checks that satisfied the trip condition (0 once tripped)."""
        return 0 if self.tripped else sum(self.history)

    @property
    def labels_awaited(self) -> int:
        """Labels a due retrain still waits for (0 when it does not wait)."""
        if self.waiting_since is None or self.labels_needed is None:
            return 0
        return max(0, self.labels_needed - (self.new_labels or 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "history": list(self.history),
            "tripped": self.tripped,
            "tripped_at": _iso(self.tripped_at),
            "clear_streak": self.clear_streak,
            "action_due": self.action_due,
            "last_action": _iso(self.last_action),
            "recent_actions": [t.isoformat() for t in self.recent_actions],
            "last_suppression": self.last_suppression,
            "last_check": _iso(self.last_check),
            "cooldown_from": _iso(self.cooldown_from),
            "calm_at": _iso(self.calm_at),
            "calm_labels": self.calm_labels,
            "baseline_at": _iso(self.baseline_at),
            "baseline_labels": self.baseline_labels,
            "episode_since": _iso(self.episode_since),
            "episode_labels": self.episode_labels,
            "new_labels": self.new_labels,
            "labels_needed": self.labels_needed,
            "attempt_labels": self.attempt_labels,
            "waiting_since": _iso(self.waiting_since),
            "refine_left": self.refine_left,
            "refine_since": _iso(self.refine_since),
            "refine_labels": self.refine_labels,
            "refine_needed": self.refine_needed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyState:
        if data.get("version") != STATE_VERSION:
            raise ConfigError(f"policy state version {data.get('version')!r} is not supported")
        try:
            return cls(
                history=tuple(bool(x) for x in data.get("history", [])),
                tripped=bool(data.get("tripped", False)),
                tripped_at=_parse(data.get("tripped_at")),
                clear_streak=int(data.get("clear_streak", 0)),
                action_due=bool(data.get("action_due", False)),
                last_action=_parse(data.get("last_action")),
                recent_actions=tuple(
                    t for t in (_parse(x) for x in data.get("recent_actions", [])) if t is not None
                ),
                last_suppression=data.get("last_suppression"),
                last_check=_parse(data.get("last_check")),
                # States saved before the cooldown moved to promotions counted from any action.
                cooldown_from=_parse(data.get("cooldown_from", data.get("last_action"))),
                calm_at=_parse(data.get("calm_at")),
                calm_labels=_int(data.get("calm_labels")),
                baseline_at=_parse(data.get("baseline_at")),
                baseline_labels=_int(data.get("baseline_labels")),
                episode_since=_parse(data.get("episode_since")),
                episode_labels=_int(data.get("episode_labels")),
                new_labels=_int(data.get("new_labels")),
                labels_needed=_int(data.get("labels_needed")),
                attempt_labels=_int(data.get("attempt_labels")),
                waiting_since=_parse(data.get("waiting_since")),
                refine_left=_int(data.get("refine_left")),
                refine_since=_parse(data.get("refine_since")),
                refine_labels=_int(data.get("refine_labels")),
                refine_needed=_int(data.get("refine_needed")),
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"unreadable policy state {dict(data)!r}: {e}") from e

    def evolve(self, **changes: Any) -> PolicyState:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class PolicyStates:
    """The states of all policies, by policy name."""

    by_policy: Mapping[str, PolicyState] = field(default_factory=dict)

    def get(self, name: str) -> PolicyState:
        return self.by_policy.get(name, PolicyState())

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: state.to_json() for name, state in self.by_policy.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, Any]]) -> PolicyStates:
        """States from the store; an unreadable one starts afresh instead of stopping the daemon."""
        states = {}
        for name, raw in data.items():
            try:
                states[name] = PolicyState.from_json(raw)
            except ConfigError as e:
                logger.warning("policy %s: starting from a fresh state: %s", name, e)
        return cls(states)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive timestamp {value!r}")
    return parsed
