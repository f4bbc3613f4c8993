"""calibrations: each station's calibration against its staff gauge, and its checks (issue 20)

One row per calibration (offset, or offset and scale from two points) or check: who, when,
the staff gauge reading and the station's reading, the offset and scale in force after it,
the calibration version, the residual, and since when the station measures with it (the
wire format carries no calibration version: this history says which one was active when).

Revision ID: 0009
Revises: 0008 (0008_alert_params)
Create Date: 2026-11-28 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calibrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('by_user', sa.String(length=64), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.Column('staff_mm', sa.Integer(), nullable=False),
        sa.Column('raw_mm', sa.Integer(), nullable=False),
        sa.Column('level_mm', sa.Integer(), nullable=False),
        sa.Column('reading_t', sa.BigInteger(), nullable=True),
        sa.Column('offset_mm', sa.Integer(), nullable=False),
        sa.Column('scale', sa.Float(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('residual_mm', sa.Integer(), nullable=False),
        sa.Column('config_version', sa.Integer(), nullable=True),
        sa.Column('active_from', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calibrations_station_id'), ['station_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calibrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calibrations_station_id'))
    op.drop_table('calibrations')
