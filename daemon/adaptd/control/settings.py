from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section


class SchedulerSettings(Section):
    check_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between monitor checks."
    )
    check_cron: str | None = Field(
        default=None, description="Crontab expression for checks; overrides check_interval_s."
    )
