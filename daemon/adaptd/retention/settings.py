"""The ``retention:`` config section: how many days each kind of data is kept (null: forever)."""

from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section

#: the tables and file kinds retention prunes, in the order a pass prunes them
STORE_TABLES = ("predictions", "feedback", "monitor_results", "events")
FILE_KINDS = ("runs", "rejected_adapters")
KINDS = (*STORE_TABLES, *FILE_KINDS)


class RetentionSettings(Section):
    """Ages in days (fractions allowed); null keeps that kind of data forever."""

    # Predictions hold people's texts: keep them no longer than the loop needs them. Labels
    # often arrive days after the prediction and a retrain policy may wait weeks for enough of
    # them, so three months; the monitors' reference rows are never pruned (see retention.keep).
    predictions: float | None = Field(
        default=90.0, gt=0, description="Days a logged prediction (text, embedding) is kept."
    )
    # A label is useless without its prediction's text (training joins the two), so the same.
    feedback: float | None = Field(default=90.0, gt=0, description="Days feedback is kept.")
    # Signals hold no personal data and policy backtests replay months of them: a year.
    monitor_results: float | None = Field(
        default=365.0, gt=0, description="Days stored monitor signals are kept."
    )
    # The audit trail of trips, retrains and swaps: a year, like the signals that explain it.
    events: float | None = Field(default=365.0, gt=0, description="Days events are kept.")
    # Failed runs keep their training files (texts) for diagnosis; a month is time enough.
    runs: float | None = Field(
        default=30.0,
        gt=0,
        description="Days the directory of a failed or cancelled retrain run is kept.",
    )
    # A rejected candidate can still be promoted by force; after a month nobody will.
    rejected_adapters: float | None = Field(
        default=30.0,
        gt=0,
        description="Days the files of a rejected or failed adapter version are kept (its "
        "registry row stays, for the history).",
    )
    # Hourly: ages are counted in days, and a pass over nothing expired costs a few queries.
    interval_s: float = Field(
        default=3600.0, gt=0, description="Seconds between retention passes on the control role."
    )
    # 5,000 rows delete in tens of milliseconds on SQLite and PostgreSQL (bench/retention), well
    # inside the lock budget; bigger batches gain little and hold the write lock longer.
    batch_size: int = Field(
        default=5000, ge=100, le=100_000, description="Rows deleted per transaction at most."
    )
    # SQLite has one writer: the prediction log waits while a batch deletes. A 5,000-row batch
    # holds it ~0.1 s, but on a saturated machine single batches took over 1 s (bench/retention):
    # halving at a quarter second brings the next ones back well inside the 1 s budget.
    max_batch_s: float = Field(
        default=0.25,
        gt=0,
        description="A delete transaction that takes longer halves the batch size for the next "
        "one, so no batch holds the write lock much longer than this.",
    )

    # The lock budget itself (bench/retention: no batch may hold a lock over 1 s). Halving
    # reacts only after a slow batch has held the lock; on PostgreSQL the server also cancels
    # (and rolls back) a batch at this age, which is then retried at half the size. Measured
    # 2026-11-30: 5,000-row batches take 20-70 ms there, so only a stalled one is cancelled.
    batch_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="PostgreSQL cancels a delete transaction still running after this many "
        "seconds and the pass retries it at half the size (SQLite has no statement timeout).",
    )

    def age_days(self, kind: str) -> float | None:
        value: float | None = getattr(self, kind)
        return value
