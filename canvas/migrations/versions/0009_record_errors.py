"""block_run.records_failed, errors_blob_key, records_confirmed and input_output_id, workflow_run.records_failed,
retry_of and retried_positions: record-level errors, retrying failed records, resuming after confirmed records

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.add_column(sa.Column('records_failed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('errors_blob_key', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('records_confirmed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('input_output_id', sa.Uuid(), nullable=True))
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.add_column(sa.Column('records_failed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('retry_of', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('retried_positions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_column('retried_positions')
        batch_op.drop_column('retry_of')
        batch_op.drop_column('records_failed')
    with op.batch_alter_table('block_run') as batch_op:
        batch_op.drop_column('input_output_id')
        batch_op.drop_column('records_confirmed')
        batch_op.drop_column('errors_blob_key')
        batch_op.drop_column('records_failed')
