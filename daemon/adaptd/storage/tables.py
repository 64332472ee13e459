"""The schema, as SQLAlchemy Core tables. Changes to it go through an Alembic migration only.

Core tables rather than ORM classes: the prediction log is written with batched Core inserts
(an ORM commit per row caps ingest at ~2k rows/s), and every reader maps rows to our dataclasses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps go in as UTC and come out timezone-aware, on SQLite too (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: adaptd stores timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Deterministic constraint names, so migrations can drop and alter them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

predictions = Table(
    "predictions",
    metadata,
    # seq orders the log and lets readers page through it without timestamp ties.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("ts", UTCDateTime(), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("text", Text, nullable=True),
    Column("text_hash", String(64), nullable=False),
    Column("label", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("probabilities", JSON, nullable=False),
    # float16 bytes of the pooled embedding: 768 B for MiniLM's 384 dims.
    Column("embedding", LargeBinary, nullable=True),
    Column("attributes", JSON, nullable=True),
    Column("truncated", Boolean, nullable=False, default=False),
    Column("latency_ms", Float, nullable=True),
    # The text's descriptors when the text itself is not kept (privacy.text: hashed).
    Column("text_features", JSON, nullable=True),
)
Index("ix_predictions_ts", predictions.c.ts)
Index("ix_predictions_adapter_seq", predictions.c.adapter, predictions.c.seq)

feedback = Table(
    "feedback",
    metadata,
    # One label per prediction: repeating it is idempotent, a different label replaces it.
    Column("prediction_id", String(128), primary_key=True),
    Column("label", String(64), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("source", String(64), nullable=True),
)
Index("ix_feedback_ts", feedback.c.ts)

adapters = Table(
    "adapters",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("parent", String(64), nullable=True),
    # candidate | active | retired | rejected | failed
    Column("status", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("promoted", UTCDateTime(), nullable=True),
    Column("reason", Text, nullable=True),
    Column("data_window", JSON, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("verdict", JSON, nullable=True),
    Column("config", JSON, nullable=True),
)
Index("ix_adapters_status", adapters.c.status)

retrain_runs = Table(
    "retrain_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started", UTCDateTime(), nullable=False),
    Column("finished", UTCDateTime(), nullable=True),
    # queued | running | promoted | awaiting_approval | rejected | failed | cancelled |
    # interrupted (found running by the startup repair)
    Column("status", String(24), nullable=False),
    Column("reason", Text, nullable=True),
    Column("policy", String(128), nullable=True),
    Column("parent", String(64), nullable=True),
    Column("candidate", String(64), nullable=True),
    Column("samples", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("details", JSON, nullable=True),
)

monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", UTCDateTime(), nullable=False),
    Column("signal", String(128), nullable=False),
    Column("value", Float, nullable=True),
    # ok | drift | insufficient_data | error
    Column("status", String(24), nullable=False),
    Column("adapter", String(64), nullable=True),
    Column("n_reference", Integer, nullable=True),
    Column("n_current", Integer, nullable=True),
    Column("details", JSON, nullable=True),
)
Index("ix_monitor_results_signal_ts", monitor_results.c.signal, monitor_results.c.ts)

policy_state = Table(
    "policy_state",
    metadata,
    Column("policy", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", UTCDateTime(), nullable=False),
    # trip | clear | suppressed | action | promoted | rejected | rolled_back | retrain_* | ...
    Column("kind", String(32), nullable=False),
    Column("source", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=True),
)
Index("ix_events_ts", events.c.ts)

# The scored validation rows of an adapter (its held-out recent rows and the golden set, scored
# by the adapter itself in the training child): the monitors' reference for that adapter, so
# the reference is data it never trained on and predates any shift that comes after it.
reference_rows = Table(
    "reference_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("adapter", String(64), nullable=False),
    # recent | golden
    Column("slice", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=True),
    Column("true_label", String(64), nullable=False),
    Column("label", String(64), nullable=False),
    Column("probabilities", JSON, nullable=False),
    # float16 bytes of the pooled embedding, as in predictions
    Column("embedding", LargeBinary, nullable=True),
    Column("attributes", JSON, nullable=True),
    Column("created", UTCDateTime(), nullable=False),
)
Index("ix_reference_rows_adapter_id", reference_rows.c.adapter, reference_rows.c.id)

# Lineage: which rows each retrain run trained on, so forgetting a person can name the adapter
# versions that learned from their data. Never the text: the prediction id when the row came
# from the store's feedback, and always a keyed hash of the text (retention.lineage), which also
# matches rows that came back through the replay reservoir or a file.
training_rows = Table(
    "training_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("prediction_id", String(128), nullable=True),
    Column("text_hash", String(64), nullable=False),
)
Index("ix_training_rows_run_id", training_rows.c.run_id)
Index("ix_training_rows_prediction_id", training_rows.c.prediction_id)
Index("ix_training_rows_text_hash", training_rows.c.text_hash)

# The replay reservoir and the golden set (``retraining.replay``): one row each, the examples as
# a JSON list. In the store, not in a controller's state_dir, so a standby controller on another
# host that takes over trains with the same replay and judges on the same golden set.
replay_sets = Table(
    "replay_sets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seen", BigInteger, nullable=False),
    Column("examples", JSON, nullable=False),
)

# Running totals that outlive the rows they count: ``labelled_deleted`` keeps the labelled rows
# retention and forgetting deleted in ``repository.count_labelled`` (created at 0 by 0005).
counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# One row per promotion that replaced a version: the new adapter is on probation against the
# one it replaced until the control loop ends it. In the store, not in memory, so a restart
# resumes it and a promotion made by the CLI or another host gets one too.
probations = Table(
    "probations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("previous", String(64), nullable=False),
    Column("started", UTCDateTime(), nullable=False),
    # who promoted: control | cli | http | retraining | ...
    Column("source", String(64), nullable=False),
    # running | passed | rolled_back | superseded
    Column("status", String(16), nullable=False),
    Column("finished", UTCDateTime(), nullable=True),
    Column("reason", Text, nullable=True),
)
Index("ix_probations_status", probations.c.status)

# The files of each adapter version, so that a host that did not import it can build it
# (adapters.blobs materializes them into a local cache and checks their hash first).
adapter_files = Table(
    "adapter_files",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Store-level locks (storage.locks): on SQLite the row with an unexpired lease *is* the lock;
# on PostgreSQL the lock is a session advisory lock and the row only says who holds it.
store_locks = Table(
    "store_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired", UTCDateTime(), nullable=False),
    Column("expires", UTCDateTime(), nullable=True),
)
