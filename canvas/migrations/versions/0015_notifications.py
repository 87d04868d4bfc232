"""Run notifications: per-workflow notification settings, and the follow-up mark of a run's final state (its
callbacks and notification queued)

Runs that ended before this migration count as followed up: nobody is told about them again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from canvas.models.base import UtcDateTime


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

NOT_FOLLOWED_UP = "followed_up_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.add_column(sa.Column('notification_settings', sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.add_column(sa.Column('followed_up_at', UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE workflow_run SET followed_up_at = COALESCE(date_finished, date_queued) "
               "WHERE status IN ('Succeeded', 'Failed', 'Cancelled')")
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.create_index('ix_workflow_run_not_followed_up', ['date_finished'], unique=False,
                              sqlite_where=sa.text(NOT_FOLLOWED_UP), postgresql_where=sa.text(NOT_FOLLOWED_UP))


def downgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_index('ix_workflow_run_not_followed_up')
        batch_op.drop_column('followed_up_at')
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.drop_column('notification_settings')
