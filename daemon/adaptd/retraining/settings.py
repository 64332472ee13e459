from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section


class RetrainingSettings(Section):
    epochs: int = Field(default=3, ge=1, description="Passes over the assembled training set.")
    batch_size: int = Field(default=16, ge=1, description="Training batch size.")
    learning_rate: float = Field(default=5e-4, gt=0, description="Peak learning rate.")
    threads: int | None = Field(
        default=None, ge=1, description="torch threads of the training child."
    )
    timeout_s: float = Field(default=3600.0, gt=0, description="A run longer than this is killed.")


class ValidationSettings(Section):
    min_improvement: float = Field(
        default=0.0,
        description="Accuracy the candidate must gain over the champion on recent data.",
    )
