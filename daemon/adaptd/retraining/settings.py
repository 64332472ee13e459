"""Config of the retrain job (``retraining:``) and of the promotion gates (``validation:``).

Gates read like TFX's Evaluator thresholds and MLflow's ``MetricThreshold``: a metric on a slice
with absolute bounds (``min``/``max``) and bounds relative to the champion (``max_drop`` for
metrics where higher is better, ``max_rise`` for gaps and error rates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from adaptd.settings_base import Section


class ProbationSettings(Section):
    window_s: float = Field(
        default=3600.0, gt=0, description="How long a newly promoted adapter is on probation."
    )
    min_samples: int = Field(
        default=100,
        ge=1,
        description="Monitored predictions (or labels) needed before probation can roll back.",
    )
    max_accuracy_drop: float = Field(
        default=0.02,
        ge=0,
        description="Rollback when labelled or estimated accuracy falls this far below the old "
        "adapter's.",
    )
    max_error_rate_rise: float = Field(
        default=0.01, ge=0, description="Rollback when the serving error rate rises this much."
    )
    max_bias_rise: float = Field(
        default=0.05, ge=0, description="Rollback when a bias gap rises this much."
    )


class RetrainingSettings(Section):
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where the fine-tune runs: a local child process, or a Ray task.",
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address for executor: ray (default: local Ray)."
    )
    mode: Literal["auto", "finetune", "features"] = Field(
        default="auto",
        description="features: fit the classifier head on frozen pooled features (a linear "
        "probe; seconds). finetune: that probe, then LoRA and head together (LP-FT). auto: "
        "finetune, but keep the probe when fine-tuning does not beat it on the dev split. "
        "Default chosen by bench/adaptation/recipe.py (RECIPE.md).",
    )
    warm_start: bool = Field(
        default=True,
        description="Start from the active adapter's LoRA and head (incremental); false starts "
        "a fresh LoRA every time.",
    )
    rank: int = Field(default=8, ge=1, description="LoRA rank of a fresh adapter.")
    alpha: int = Field(default=16, ge=1, description="LoRA alpha of a fresh adapter.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        default_factory=lambda: ["all-linear"],
        description="Modules a fresh LoRA adapts. all-linear: every linear layer of the encoder "
        "(on BERT query/key/value/dense: +1.3 points over query/value, "
        "bench/adaptation/recipe.py); null: peft's choice for the architecture.",
    )
    epochs: int = Field(
        default=2,
        ge=1,
        description="Fine-tune passes over the training set (bench/adaptation/recipe.py).",
    )
    min_steps: int = Field(
        default=150,
        ge=0,
        description="Fewest fine-tune optimizer steps: a small training set gets more epochs "
        "instead of a starved run (bench/adaptation/recipe.py, the 600-row case).",
    )
    batch_size: int = Field(default=16, ge=1, description="Training batch size.")
    learning_rate: float = Field(
        default=1e-3,
        gt=0,
        description="Peak learning rate of the LoRA weights (bench/adaptation/recipe.py).",
    )
    head_learning_rate: float = Field(
        default=1e-3,
        gt=0,
        description="Peak learning rate of the classifier head while fine-tuning "
        "(bench/adaptation/recipe.py).",
    )
    probe_c: float = Field(
        default=1.0,
        gt=0,
        description="Inverse L2 strength of the linear probe, as scikit-learn's C (C=1 is the "
        "frozen-feature baseline of bench/adaptation/recipe.py).",
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    schedule: Literal["linear", "cosine", "constant"] = Field(
        default="cosine", description="Learning-rate decay after warmup."
    )
    warmup_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Share of steps spent warming the learning rate up."
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many epochs without a better dev score (null: run every "
        "epoch; the best one on dev is kept either way).",
    )
    dev_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of the training set held aside to pick the best checkpoint.",
    )
    max_length: int | None = Field(
        default=None, ge=8, description="Tokens per training text (default: model.max_length)."
    )
    seed: int = Field(default=0, description="Seed of shuffles, sampling and initialisation.")
    threads: int | None = Field(
        default=None, ge=1, description="torch threads of the training child (default: 1)."
    )
    timeout_s: float = Field(default=3600.0, gt=0, description="A run longer than this is killed.")
    nice: int = Field(
        default=10, ge=0, le=19, description="Niceness of the training child, so serving wins."
    )
    # --- data ----------------------------------------------------------------------------------
    min_labels: int = Field(
        default=50, ge=2, description="Fewest labelled examples a retrain accepts."
    )
    max_labels: int = Field(
        default=2000, ge=2, description="Newest labelled examples taken from the store."
    )
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of the newest labelled data held out for validation.",
    )
    min_holdout: int = Field(default=20, ge=1, description="Fewest held-out examples.")
    replay_ratio: float = Field(
        default=0.5,
        ge=0,
        description="Replayed earlier examples per new training example (anti-forgetting).",
    )
    reservoir_size: int = Field(
        default=5000, ge=0, description="Examples kept in the replay reservoir."
    )
    balance: Literal["none", "reweight", "oversample"] = Field(
        default="reweight", description="Class balancing of the training set."
    )
    group_attributes: list[str] = Field(
        default_factory=list,
        description="Attributes whose under-served groups are up-weighted (a bias policy may "
        "add to this per run).",
    )
    require_approval: bool = Field(
        default=False,
        description="A validated candidate waits for an operator's promote instead of going live.",
    )
    probation: ProbationSettings = Field(
        default_factory=ProbationSettings,
        description="After a promotion: when the new adapter is rolled back automatically.",
    )

    @model_validator(mode="after")
    def _labels_fit(self) -> RetrainingSettings:
        if self.max_labels < self.min_labels:
            raise ValueError(
                f"max_labels ({self.max_labels}) is below min_labels ({self.min_labels})"
            )
        return self


GateMetric = Literal["accuracy", "macro_f1", "error_rate", "dp_diff", "accuracy_gap"]


class GateSettings(Section):
    metric: GateMetric = Field(
        description="accuracy, macro_f1, error_rate (on recent/golden); dp_diff (largest gap in "
        "positive rate between groups) or accuracy_gap (between groups) on an attribute slice."
    )
    slice: str = Field(
        description="recent (held-out newest labels), golden (the fixed golden set), or the "
        "name of a group attribute for dp_diff/accuracy_gap."
    )
    min: float | None = Field(default=None, description="Absolute lower bound.")
    max: float | None = Field(default=None, description="Absolute upper bound.")
    max_drop: float | None = Field(
        default=None, ge=0, description="Most the candidate may fall below the champion."
    )
    max_rise: float | None = Field(
        default=None, ge=0, description="Most the candidate may rise above the champion."
    )

    @model_validator(mode="after")
    def _has_bound(self) -> GateSettings:
        if all(v is None for v in (self.min, self.max, self.max_drop, self.max_rise)):
            raise ValueError(
                f"gate {self.metric}@{self.slice} has no bound (min, max, max_drop or max_rise)"
            )
        group_metric = self.metric in {"dp_diff", "accuracy_gap"}
        if group_metric == (self.slice in {"recent", "golden"}):
            raise ValueError(
                f"gate {self.metric}@{self.slice}: dp_diff/accuracy_gap take an attribute slice, "
                "the other metrics take recent or golden"
            )
        return self


def _default_gates() -> list[GateSettings]:
    return [
        GateSettings(metric="accuracy", slice="recent", min=0.6),
        GateSettings(metric="accuracy", slice="recent", max_drop=0.0),
        GateSettings(metric="accuracy", slice="golden", max_drop=0.01),
    ]


class ValidationSettings(Section):
    gates: list[GateSettings] = Field(
        default_factory=_default_gates,
        description="Every gate must pass for a candidate to be promoted.",
    )
    significance: Literal["mcnemar", "bootstrap", "none"] = Field(
        default="mcnemar",
        description="Paired test that the candidate beats the champion on recent data.",
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Significance level of the paired test."
    )
    bootstrap_samples: int = Field(default=2000, ge=100, description="Paired bootstrap resamples.")
    min_improvement: float = Field(
        default=0.0,
        description="Accuracy the candidate must gain over the champion on recent data.",
    )
    golden_file: Path | None = Field(
        default=None,
        description="Labelled CSV/JSONL golden set; default: a frozen sample of the first "
        "training data.",
    )
    golden_size: int = Field(
        default=500, ge=10, description="Size of the frozen golden sample when no file is given."
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")
