from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section


class MonitorsSettings(Section):
    min_samples: int = Field(
        default=200, ge=1, description="Below this a monitor says insufficient data."
    )
    current_window: int = Field(
        default=2000, ge=1, description="Predictions in the current window."
    )
    reference_window: int = Field(
        default=2000,
        ge=1,
        description="First live predictions of the active adapter kept as reference.",
    )
    attributes: list[str] = Field(
        default_factory=list, description="Request attributes sliced for bias metrics."
    )
