"""crm: pipeline and account names unique whatever their case

The code compares names without regard to case; these indexes make the database agree, so two
transactions creating "Acme" and "acme" at once cannot both succeed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("uq_pipelines_lower_name", "pipelines", [sa.text("lower(name)")], unique=True)
    op.create_index("uq_accounts_lower_name", "accounts", [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_accounts_lower_name", table_name="accounts")
    op.drop_index("uq_pipelines_lower_name", table_name="pipelines")
