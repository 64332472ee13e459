"""Monitors' config section: window sizes, sample floors, test thresholds, bias slices."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adaptd.settings_base import Section


class TermPair(Section):
    """Two terms swapped by the counterfactual probe (e.g. he/she)."""

    a: str = Field(description="First term (matched as a whole word, case-insensitive).")
    b: str = Field(description="Second term.")


class MonitorsSettings(Section):
    min_samples: int = Field(
        default=200, ge=1, description="Below this a monitor says insufficient data."
    )
    current_window: int = Field(
        default=2000, ge=1, description="Predictions in the current window."
    )
    current_minutes: float | None = Field(
        default=None,
        gt=0,
        description="If set, the current window is the last T minutes (capped at current_window).",
    )
    reference_window: int = Field(
        default=2000,
        ge=1,
        description="First live predictions of the active adapter kept as reference when it "
        "has no stored validation rows (an imported adapter).",
    )
    attributes: list[str] = Field(
        default_factory=list, description="Request attributes sliced for bias metrics."
    )
    positive_label: str | None = Field(
        default=None,
        description="Label counted as 'positive' by bias metrics (default: the last label).",
    )
    min_group_size: int = Field(
        default=30,
        ge=1,
        description="The one minimum group size: groups smaller than this are left out of bias "
        "metrics, probation's gaps and the validation gates, and a validation slice smaller "
        "than this is not judged.",
    )
    bootstrap_samples: int = Field(
        default=200, ge=0, description="Bootstrap resamples for bias confidence intervals."
    )
    bias_threshold: float = Field(
        default=0.1, ge=0, le=1, description="A bias difference above this is a DRIFT status."
    )
    drift_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of drifted text descriptors that marks text drift (as Evidently).",
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Significance level of the statistical tests."
    )
    embedding_components: int = Field(
        default=8, ge=1, le=64, description="PCA dimensions fitted on the reference embeddings."
    )
    embedding_drift_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Share of PCA dimensions rejected (after correction) that marks drift; above "
        "one dimension, so a single chance rejection does not trip a policy.",
    )
    correction: Literal["bonferroni", "bh"] = Field(
        default="bonferroni", description="Multiple-testing correction of per-dimension tests."
    )
    domain_classifier_rows: int = Field(
        default=5000,
        ge=50,
        description="Rows per side sampled for the domain classifier (keeps it cheap at 100k).",
    )
    auc_threshold: float = Field(
        default=0.55, gt=0.5, lt=1, description="Domain-classifier AUC above this is drift."
    )
    psi_threshold: float = Field(default=0.2, gt=0, description="PSI above this is drift.")
    jsd_threshold: float = Field(
        default=0.1, gt=0, le=1, description="Jensen-Shannon distance above this is drift."
    )
    wasserstein_threshold: float = Field(
        default=0.1, gt=0, description="Normalized Wasserstein distance above this is drift."
    )
    accuracy_drop: float = Field(
        default=0.05, gt=0, le=1, description="Accuracy below reference by more is drift."
    )
    ece_bins: int = Field(default=10, ge=2, le=100, description="Bins of the calibration error.")
    adwin_delta: float = Field(
        default=0.002, gt=0, lt=1, description="ADWIN confidence on the labelled error stream."
    )
    counterfactual_pairs: list[TermPair] = Field(
        default_factory=list, description="Term pairs swapped by the counterfactual probe."
    )
    counterfactual_samples: int = Field(
        default=200, ge=1, description="Live texts probed per check (those with a pair term)."
    )
    seed: int = Field(default=0, description="Seed of subsampling and bootstrap (reproducible).")
