"""/v2/logs reads its lines from log_line (0018); of the runs it still reads only the failed ones: the index of
every run by finish time becomes a partial index of the failed runs, which the runs that succeed never touch.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

FAILED = "status = 'Failed'"


def upgrade() -> None:
    op.drop_index('ix_workflow_run_finished', table_name='workflow_run')
    op.create_index('ix_workflow_run_failed', 'workflow_run', ['date_finished', 'id', 'workflow_id'], unique=False,
                    sqlite_where=sa.text(FAILED), postgresql_where=sa.text(FAILED))


def downgrade() -> None:
    op.drop_index('ix_workflow_run_failed', table_name='workflow_run',
                  sqlite_where=sa.text(FAILED), postgresql_where=sa.text(FAILED))
    op.create_index('ix_workflow_run_finished', 'workflow_run', ['date_finished', 'id', 'status', 'workflow_id'],
                    unique=False)
