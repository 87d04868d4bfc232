"""Log lines, one row each (log_line), indexed by workspace, account and flow and time: /v2/logs reads a page of
them from an index instead of walking every run before it. The lines already in block runs are copied in.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

from canvas.execution.run_log import line_rows
from canvas.models.base import UtcDateTime


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

BATCH = 1000  # block runs copied at a time

block_run = sa.table('block_run', sa.column('id', sa.Uuid()), sa.column('run_id', sa.Uuid()),
                     sa.column('log', sa.JSON()), sa.column('date_finished', UtcDateTime(timezone=True)))
workflow_run = sa.table('workflow_run', sa.column('id', sa.Uuid()), sa.column('workflow_id', sa.Uuid()),
                        sa.column('date_finished', UtcDateTime(timezone=True)),
                        sa.column('date_queued', UtcDateTime(timezone=True)))
workflow = sa.table('workflow', sa.column('id', sa.Uuid()), sa.column('account_id', sa.Uuid()),
                    sa.column('organization_id', sa.Uuid()))


def upgrade() -> None:
    log_line = op.create_table(
        'log_line',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('block_run_id', sa.Uuid(), nullable=False),
        sa.Column('run_id', sa.Uuid(), nullable=False),
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('organization_id', sa.Uuid(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('logged_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('stated_time', sa.Text(), nullable=True),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['block_run_id'], ['block_run.id'], name=op.f('fk_log_line_block_run_id_block_run'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_log_line')),
    )
    op.create_index('ix_log_line_organization_time', 'log_line', ['organization_id', 'logged_at', 'id'],
                    unique=False)
    op.create_index('ix_log_line_account_time', 'log_line', ['account_id', 'logged_at', 'id'], unique=False)
    op.create_index('ix_log_line_workflow_time', 'log_line', ['workflow_id', 'logged_at', 'id'], unique=False)
    _copy_lines(op.get_bind(), log_line)


def _copy_lines(connection, log_line) -> None:  # noqa: ANN001
    """Every block run's lines, in batches of block runs (keyset on the id), each line sorting as the reader did
    before: its own time, else its block's end, else its run's end, else its run's queueing."""
    query = (sa.select(block_run.c.id, block_run.c.run_id, block_run.c.log, block_run.c.date_finished,
                       workflow_run.c.date_finished.label('run_finished'), workflow_run.c.date_queued,
                       workflow.c.id.label('workflow_id'), workflow.c.account_id, workflow.c.organization_id)
             .select_from(block_run.join(workflow_run, workflow_run.c.id == block_run.c.run_id)
                          .join(workflow, workflow.c.id == workflow_run.c.workflow_id))
             .order_by(block_run.c.id).limit(BATCH))
    after = None
    while True:
        batch = connection.execute(query if after is None else query.where(block_run.c.id > after)).all()
        rows = []
        for block in batch:
            owners = {'block_run_id': block.id, 'run_id': block.run_id, 'workflow_id': block.workflow_id,
                      'account_id': block.account_id, 'organization_id': block.organization_id}
            end = block.date_finished or block.run_finished or block.date_queued
            rows += [{**owners, **row} for row in line_rows(block.log if isinstance(block.log, list) else [], end)]
        if rows:
            connection.execute(sa.insert(log_line), rows)
        if len(batch) < BATCH:
            return
        after = batch[-1].id


def downgrade() -> None:
    op.drop_index('ix_log_line_workflow_time', table_name='log_line')
    op.drop_index('ix_log_line_account_time', table_name='log_line')
    op.drop_index('ix_log_line_organization_time', table_name='log_line')
    op.drop_table('log_line')
