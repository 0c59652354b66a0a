"""policy approvals: who approved a policy to leave shadow, and who registered each policy

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 23:45:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policyapproval',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('policy_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['policy_id'], ['policyversion.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('policyapproval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policyapproval_policy_id'), ['policy_id'], unique=False)
    with op.batch_alter_table('policyversion', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policyversion', schema=None) as batch_op:
        batch_op.drop_column('created_by')
    with op.batch_alter_table('policyapproval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policyapproval_policy_id'))
    op.drop_table('policyapproval')
