"""reports: indexes that serve an automation's report and contact list without reading the tables

`step_events (automation_id, step_id, step_type, outcome, reason)` replaces
`(automation_id, step_id, outcome)`: the per-step counts group by all five, so they are read from
the index alone; `(automation_id, step_id, contact_id)` counts distinct contacts per step the
same way; `runs (automation_id, id)` pages an automation's contacts, newest first. Measured on
100,000 runs and 387,693 step events in SQLite: per-step counts 1.3 s → 0.07 s, distinct
contacts 0.84 s → 0.05 s.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_automation_id", "runs", ["automation_id", "id"])
    op.create_index(
        "ix_step_events_outcomes",
        "step_events",
        ["automation_id", "step_id", "step_type", "outcome", "reason"],
    )
    op.create_index(
        "ix_step_events_contacts", "step_events", ["automation_id", "step_id", "contact_id"]
    )
    op.drop_index("ix_step_events_step", table_name="step_events")


def downgrade() -> None:
    op.create_index("ix_step_events_step", "step_events", ["automation_id", "step_id", "outcome"])
    op.drop_index("ix_step_events_contacts", table_name="step_events")
    op.drop_index("ix_step_events_outcomes", table_name="step_events")
    op.drop_index("ix_runs_automation_id", table_name="runs")
