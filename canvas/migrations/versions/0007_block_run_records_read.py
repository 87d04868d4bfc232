"""block_run.records_read: a running block's progress through its input

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.add_column(sa.Column('records_read', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.drop_column('records_read')
