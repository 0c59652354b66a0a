"""review verdicts say whether the safety layer was right; verdicts can be reopened

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:00:00

A verdict used to be approve / reject / edit only, and "approve" was read two ways: "the output may
be served" (what the moderation export assumed: an approved flag is a false positive, a "safe"
example) and "the block was right" (what a reviewer meant approving a blocked harmful prompt with
category "violence"). ``reviewitem.safety_layer`` ("right" / "wrong") now says which, next to the
status (whether the output may be served). Existing verdicts are migrated explicitly:

- approved with no category or "safe": the flag was wrong (the old, documented meaning);
- rejected or edited with a category other than "safe": the flag was right;
- anything else (approved with a harm category, rejected as "safe") contradicts itself: it stays
  NULL, which yields no training example for the harm classifier; an admin can reopen it
  (``arbiter review reopen``) for a reviewer to decide again.

``reviewitem.reopened_at`` records when an admin last reopened an item's verdict.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviewitem") as batch_op:
        batch_op.add_column(sa.Column("safety_layer", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE reviewitem SET safety_layer = 'wrong' "
               "WHERE status = 'approved' AND (category IS NULL OR category = 'safe')")
    op.execute("UPDATE reviewitem SET safety_layer = 'right' "
               "WHERE status IN ('rejected', 'edited') AND category IS NOT NULL AND category <> 'safe'")


def downgrade() -> None:
    with op.batch_alter_table("reviewitem") as batch_op:
        batch_op.drop_column("reopened_at")
        batch_op.drop_column("safety_layer")
