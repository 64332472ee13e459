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
