"""monitor readings: the history of the drift, action-distribution, safety-rate and review monitors

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 23:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitorreading',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('report_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('decision_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('policy_version_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('monitor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('monitorreading', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitorreading_report_id'), ['report_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitorreading_decision_type'), ['decision_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitorreading_policy_version_id'), ['policy_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitorreading_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('monitorreading', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitorreading_created_at'))
        batch_op.drop_index(batch_op.f('ix_monitorreading_policy_version_id'))
        batch_op.drop_index(batch_op.f('ix_monitorreading_decision_type'))
        batch_op.drop_index(batch_op.f('ix_monitorreading_report_id'))
    op.drop_table('monitorreading')
