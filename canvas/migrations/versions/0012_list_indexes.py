"""Indexes that serve the lists in their order, so that a page of a long list, and its total count, read only what
they show: GET Workflows and /v2/flows (an account's or an organization's live workflows), GET Accounts, GET
RegApplications and /v2/credentials, /v2/executions (runs newest first)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

LIVE = "date_deleted IS NULL"


def upgrade() -> None:
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.create_index('ix_workflow_account_created', ['account_id', 'date_created', 'id'], unique=False,
                              sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
        batch_op.create_index('ix_workflow_account_live', ['account_id', 'id'], unique=False,
                              sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
        batch_op.create_index('ix_workflow_organization_live', ['organization_id', 'id'], unique=False,
                              sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    with op.batch_alter_table('account') as batch_op:
        batch_op.create_index('ix_account_organization_listed', ['organization_id', 'active', 'date_created', 'email'],
                              unique=False)
    with op.batch_alter_table('registered_application') as batch_op:
        batch_op.create_index('ix_registered_application_account_created', ['account_id', 'date_created', 'id'],
                              unique=False)
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.create_index('ix_workflow_run_queued', ['date_queued'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_run') as batch_op:
        batch_op.drop_index('ix_workflow_run_queued')
    with op.batch_alter_table('registered_application') as batch_op:
        batch_op.drop_index('ix_registered_application_account_created')
    with op.batch_alter_table('account') as batch_op:
        batch_op.drop_index('ix_account_organization_listed')
    with op.batch_alter_table('workflow') as batch_op:
        batch_op.drop_index('ix_workflow_organization_live', sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
        batch_op.drop_index('ix_workflow_account_live', sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
        batch_op.drop_index('ix_workflow_account_created', sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
