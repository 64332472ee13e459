"""text_features: with privacy.text hashed the prediction log keeps a text's descriptors (length,
word count, a few shares) instead of the text, so text drift is still watched on every prediction

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: adding it rewrites no existing row on either backend.
    op.add_column("predictions", sa.Column("text_features", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "text_features")
