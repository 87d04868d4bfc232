"""Indexes that let a deep page of a list skip its rows in the index alone (an index-only scan; see
canvas.workflows.service.slice_of, which reads a page's ids first): each list's index also holds the id, and for
/v2/executions and /v2/logs the workflow whose visibility they check (and for /v2/logs the status it filters on).
GET WorkflowTemplates gets an index in its order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

# (table, index, columns before, columns now)
WIDENED = [
    ('account', 'ix_account_organization_listed', ['organization_id', 'active', 'date_created', 'email'],
     ['organization_id', 'active', 'date_created', 'email', 'id']),
    ('workflow_run', 'ix_workflow_run_workflow_queued', ['workflow_id', 'date_queued'],
     ['workflow_id', 'date_queued', 'id']),
    ('workflow_run', 'ix_workflow_run_queued', ['date_queued'], ['date_queued', 'id', 'workflow_id']),
    # /v2/logs reads the ids of the runs with lines (failed, or with block runs) a batch at a time
    ('workflow_run', 'ix_workflow_run_finished', ['date_finished', 'id'],
     ['date_finished', 'id', 'status', 'workflow_id']),
    ('workflow_run', 'ix_workflow_run_workflow_finished', ['workflow_id', 'date_finished', 'id'],
     ['workflow_id', 'date_finished', 'id', 'status']),
]


def upgrade() -> None:
    for table, name, _before, now in WIDENED:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, now, unique=False)
    op.create_index('ix_workflow_template_listed', 'workflow_template', ['name', 'id', 'organization_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_workflow_template_listed', table_name='workflow_template')
    for table, name, before, _now in WIDENED:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, before, unique=False)
