"""replay: the replay reservoir and the golden set move from a controller's state_dir into the
store, so every controller (a standby on another host too) trains and judges with the same ones

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Files left under <state_dir>/replay by earlier versions are imported at first use
    # (adaptd.retraining.replay), where the state directory is known.
    op.create_table(
        "replay_sets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("seen", sa.BigInteger, nullable=False),
        sa.Column("examples", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_replay_sets"),
    )


def downgrade() -> None:
    op.drop_table("replay_sets")
