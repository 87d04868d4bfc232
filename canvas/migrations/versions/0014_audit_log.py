"""The audit log: who changed what in an organization, when, and the before/after of the changed fields

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

from canvas.models.base import UtcDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_entry',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('organization_id', sa.Uuid(), nullable=True),
        sa.Column('actor_id', sa.Uuid(), nullable=True),
        sa.Column('actor_kind', sa.String(length=20), nullable=False),
        sa.Column('acting_as_id', sa.Uuid(), nullable=True),
        sa.Column('occurred_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('object_type', sa.String(length=40), nullable=False),
        sa.Column('object_id', sa.String(length=64), nullable=True),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.Column('request_id', sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    )
    with op.batch_alter_table('audit_entry') as batch_op:
        batch_op.create_index('ix_audit_entry_organization_time', ['organization_id', 'occurred_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_audit_entry_organization_action', ['organization_id', 'action', 'occurred_at'],
                              unique=False)
        batch_op.create_index('ix_audit_entry_organization_object',
                              ['organization_id', 'object_type', 'object_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_audit_entry_organization_actor', ['organization_id', 'actor_id', 'occurred_at'],
                              unique=False)
        batch_op.create_index('ix_audit_entry_occurred_at', ['occurred_at'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_entry')
