from __future__ import annotations

from pydantic import Field, field_validator

from adaptd.settings_base import Section


class SchedulerSettings(Section):
    check_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between monitor checks."
    )
    check_cron: str | None = Field(
        default=None,
        description="Crontab expression for checks (5 fields, e.g. '*/10 * * * *'); "
        "overrides check_interval_s.",
    )
    timezone: str = Field(default="UTC", description="Time zone of check_cron.")
    misfire_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="A check that could not start on time (busy, suspended machine) still runs "
        "if it is at most this late; missed runs are coalesced into one.",
    )
    check_on_start: bool = Field(
        default=False, description="Run a first check as soon as the scheduler starts."
    )
    leader_lease_s: float = Field(
        default=15.0,
        ge=3.0,
        description="On SQLite, how long the control leader's lease lasts without renewal (it is "
        "renewed every third of it): a standby takes over at most this plus leader_poll_s after "
        "the leader died. 15 s keeps takeover well under 30 s while a leader stalled by a "
        "training child or a busy disk for a few seconds keeps its lease. On PostgreSQL the "
        "lock is an advisory lock that the server frees when the leader's session ends.",
    )
    leader_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="How often a standby tries to become the control leader (and a leader "
        "checks it still is): one cheap query, and at most this much added to a takeover.",
    )

    @field_validator("check_cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as e:
            raise ValueError(f"invalid crontab expression {value!r}: {e}") from e
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {value!r}") from e
        return value
