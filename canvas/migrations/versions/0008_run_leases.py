"""workflow_run.lease_token, heartbeat_at and dispatch_count: run leases with fencing, recovery of stranded runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from canvas.models.base import UtcDateTime


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.add_column(sa.Column('lease_token', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dispatch_count', sa.Integer(), nullable=False, server_default='1'))
        batch_op.create_index('ix_workflow_run_status_heartbeat', ['status', 'heartbeat_at'], unique=False)
    # Active runs of before: their last sign of life is when they started (or were queued).
    op.execute("UPDATE workflow_run SET heartbeat_at = COALESCE(date_started, date_queued) "
               "WHERE status IN ('Queued', 'Running')")


def downgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_index('ix_workflow_run_status_heartbeat')
        batch_op.drop_column('dispatch_count')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('lease_token')
