"""Graphs: a workflow's failure policy, a run's blocks when they are not a contiguous range, and the claim and
heartbeat of a block run executed by a worker other than its run's (parallel branches)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from canvas.models.base import UtcDateTime


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.add_column(sa.Column('failure_policy', sa.String(20), nullable=False, server_default='failFast'))
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.add_column(sa.Column('block_numbers', sa.JSON(), nullable=True))
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.add_column(sa.Column('worker_name', sa.String(200), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker_name')
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_column('block_numbers')
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.drop_column('failure_policy')
