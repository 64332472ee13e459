"""The base every config section derives from: unknown keys are errors, not silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: typos fail with their field path instead of being dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
