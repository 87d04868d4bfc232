"""Indexes for /v2/logs: the runs of a workspace's (or of some flows') workflows, newest finished first, so that a
page of log lines reads a batch of runs at a time instead of every run

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.create_index('ix_workflow_run_finished', ['date_finished', 'id'], unique=False)
        batch_op.create_index('ix_workflow_run_workflow_finished', ['workflow_id', 'date_finished', 'id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_index('ix_workflow_run_workflow_finished')
        batch_op.drop_index('ix_workflow_run_finished')
