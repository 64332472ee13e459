"""reference rows: an adapter's scored validation data, the monitors' reference for it

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_rows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("adapter", sa.String(64), nullable=False),
        sa.Column("slice", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("true_label", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reference_rows"),
    )
    op.create_index("ix_reference_rows_adapter_id", "reference_rows", ["adapter", "id"])


def downgrade() -> None:
    op.drop_index("ix_reference_rows_adapter_id", table_name="reference_rows")
    op.drop_table("reference_rows")
