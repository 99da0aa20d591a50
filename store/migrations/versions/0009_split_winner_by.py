"""splits: who set an even split's winner, its rule or a person through the API

Winners set before this revision were all decided by their rule.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("split_states") as batch:
        batch.add_column(sa.Column("winner_by", sa.String(16), nullable=True))
    op.execute("UPDATE split_states SET winner_by = 'rule' WHERE winner IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("split_states") as batch:
        batch.drop_column("winner_by")
