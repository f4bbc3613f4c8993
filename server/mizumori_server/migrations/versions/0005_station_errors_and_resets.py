"""station errors and resets: the last error and reset on devices, their recent history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as t:
        t.add_column(sa.Column('last_error', sa.String(length=200), nullable=True))
        t.add_column(sa.Column('last_error_at', sa.BigInteger(), nullable=True))
        t.add_column(sa.Column('error_cleared_at', sa.BigInteger(), nullable=True))
        t.add_column(sa.Column('reset_cause', sa.String(length=16), nullable=True))
        t.add_column(sa.Column('reset_at', sa.BigInteger(), nullable=True))
        t.add_column(sa.Column('reset_reported', sa.String(length=16), nullable=True))
    op.create_table('device_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('text', sa.String(length=200), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('clock', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_events_device_id'), ['device_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_events_device_id'))

    op.drop_table('device_events')
    with op.batch_alter_table('devices') as t:
        for c in ('reset_reported', 'reset_at', 'reset_cause', 'error_cleared_at',
                  'last_error_at', 'last_error'):
            t.drop_column(c)
