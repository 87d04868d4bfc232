"""flow_settings.stopped_at: a stopped flow refuses webhook calls until it is started again

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from canvas.models.base import UtcDateTime


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('flow_settings') as batch_op:
        batch_op.add_column(sa.Column('stopped_at', UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('flow_settings') as batch_op:
        batch_op.drop_column('stopped_at')
