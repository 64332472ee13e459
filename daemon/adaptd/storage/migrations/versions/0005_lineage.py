"""lineage: the rows each retrain run trained on (prediction ids and keyed text hashes), and
the running total of labelled rows that retention and forgetting deleted

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_rows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("prediction_id", sa.String(128), nullable=True),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_rows"),
    )
    op.create_index("ix_training_rows_run_id", "training_rows", ["run_id"])
    op.create_index("ix_training_rows_prediction_id", "training_rows", ["prediction_id"])
    op.create_index("ix_training_rows_text_hash", "training_rows", ["text_hash"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    # Created here so every later change is an UPDATE: two processes never race an insert.
    op.bulk_insert(counters, [{"name": "labelled_deleted", "value": 0}])


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_index("ix_training_rows_text_hash", table_name="training_rows")
    op.drop_index("ix_training_rows_prediction_id", table_name="training_rows")
    op.drop_index("ix_training_rows_run_id", table_name="training_rows")
    op.drop_table("training_rows")
