"""initial schema: predictions, feedback, adapters, retrain runs, monitor results, policies, events

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("adapter", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_predictions"),
        sa.UniqueConstraint("id", name="uq_predictions_id"),
    )
    op.create_index("ix_predictions_ts", "predictions", ["ts"])
    op.create_index("ix_predictions_adapter_seq", "predictions", ["adapter", "seq"])

    op.create_table(
        "feedback",
        sa.Column("prediction_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("prediction_id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_ts", "feedback", ["ts"])

    op.create_table(
        "adapters",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("promoted", TS, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("data_window", sa.JSON, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("verdict", sa.JSON, nullable=True),
        sa.Column("config", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("version", name="pk_adapters"),
    )
    op.create_index("ix_adapters_status", "adapters", ["status"])

    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started", TS, nullable=False),
        sa.Column("finished", TS, nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("policy", sa.String(128), nullable=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("candidate", sa.String(64), nullable=True),
        sa.Column("samples", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_runs"),
    )

    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("signal", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("adapter", sa.String(64), nullable=True),
        sa.Column("n_reference", sa.Integer, nullable=True),
        sa.Column("n_current", sa.Integer, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_results"),
    )
    op.create_index("ix_monitor_results_signal_ts", "monitor_results", ["signal", "ts"])

    op.create_table(
        "policy_state",
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.PrimaryKeyConstraint("policy", name="pk_policy_state"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_ts", "events", ["ts"])


def downgrade() -> None:
    for index, table in [
        ("ix_events_ts", "events"),
        ("ix_monitor_results_signal_ts", "monitor_results"),
        ("ix_adapters_status", "adapters"),
        ("ix_feedback_ts", "feedback"),
        ("ix_predictions_adapter_seq", "predictions"),
        ("ix_predictions_ts", "predictions"),
    ]:
        op.drop_index(index, table_name=table)
    for table in (
        "events",
        "policy_state",
        "monitor_results",
        "retrain_runs",
        "adapters",
        "feedback",
        "predictions",
    ):
        op.drop_table(table)
