"""one outcome per decision

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 22:45:00

A decision had any number of outcomes, and metrics, the canary check and OPE averaged them. Now the
first outcome stands (a second one is refused) unless an explicit, audited correction replaces it in
place (``outcome.corrected_at``). Existing duplicates are resolved by the same rule: the earliest
outcome of each decision (by ``created_at``, then id) is kept and the later ones are deleted.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM outcome WHERE EXISTS (SELECT 1 FROM outcome AS earlier WHERE earlier.decision_id = outcome.decision_id"
        " AND (earlier.created_at < outcome.created_at"
        " OR (earlier.created_at = outcome.created_at AND earlier.id < outcome.id)))"
    )
    with op.batch_alter_table("outcome") as batch_op:
        batch_op.add_column(sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index("ix_outcome_decision_id")
        batch_op.create_index("ix_outcome_decision_id", ["decision_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("outcome") as batch_op:
        batch_op.drop_index("ix_outcome_decision_id")
        batch_op.create_index("ix_outcome_decision_id", ["decision_id"], unique=False)
        batch_op.drop_column("corrected_at")
