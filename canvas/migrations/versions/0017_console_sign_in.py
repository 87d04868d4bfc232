"""The web console's sign-in: password hashes (argon2id) and server-side browser sessions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

from canvas.models.base import UtcDateTime


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_password',
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('date_set', UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_console_password_account_id_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_console_password')),
    )
    op.create_table(
        'console_session',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('acting_as_id', sa.Uuid(), nullable=True),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('date_created', UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_console_session_account_id_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_session')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_console_session_token_hash')),
    )
    op.create_index(op.f('ix_console_session_account_id'), 'console_session', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_console_session_account_id'), table_name='console_session')
    op.drop_table('console_session')
    op.drop_table('console_password')
