"""audit entries keyed with a MAC; label jobs record their process and heartbeat

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 22:45:00

``audit_entry.mac`` / ``key_id``: an HMAC of each entry's hash under the audit key (kept in the
settings, never in the database); rows written before this revision have none and verify as unkeyed
legacy entries. ``audit_head.key_id``: once the chain is keyed, a process without that key refuses
to append. ``labeljob.host`` / ``pid`` / ``heartbeat_at``: a killed job's row can be told apart from a
running one.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    with op.batch_alter_table('labeljob', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('labeljob', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('pid')
        batch_op.drop_column('host')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('key_id')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('key_id')
        batch_op.drop_column('mac')
