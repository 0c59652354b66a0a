"""idempotency keys scoped per caller

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 22:20:00

``decision.idempotency_key`` was unique on its own, so one caller's key replayed another caller's
decision. The key is now unique per ``idempotency_scope`` (the caller: ``key:<api key id>``). Rows
written before this revision get the scope ``legacy``, which no caller has, so an old key is never
replayed to anyone (a retry after the upgrade makes a new decision).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# SQLite reflects the unnamed unique constraint of 0001 without a name; this convention names it.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name(bind) -> str:
    for uc in sa.inspect(bind).get_unique_constraints("decision"):
        if uc["column_names"] == ["idempotency_key"]:
            return uc["name"] or "uq_decision_idempotency_key"
    return "uq_decision_idempotency_key"


def upgrade() -> None:
    bind = op.get_bind()
    old = _old_unique_name(bind)
    with op.batch_alter_table("decision", naming_convention=_SQLITE_NAMES) as batch_op:
        batch_op.add_column(sa.Column("idempotency_scope", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.drop_constraint(old, type_="unique")
        batch_op.create_unique_constraint("uq_decision_idempotency", ["idempotency_scope", "idempotency_key"])
    op.execute("UPDATE decision SET idempotency_scope = 'legacy' WHERE idempotency_key IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch_op:
        batch_op.drop_constraint("uq_decision_idempotency", type_="unique")
        batch_op.create_unique_constraint("decision_idempotency_key_key", ["idempotency_key"])
        batch_op.drop_column("idempotency_scope")
