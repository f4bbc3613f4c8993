"""quality and digests: a reading's quality record, and the daily digest (issues 20 and 17)

readings.quality, spread_mm, calibration_version: what the quality record (codec 0x14) that
follows a reading says (its flags, the burst's spread, the calibration version the station
measured with); null for readings sent without one (every reading before this migration).
digests: the daily digest (codec 0x15) a station of the MLIT profile sends over LoRaWAN in
watch mode, standing for its readings first_seq..seq.

Revision ID: 0010
Revises: 0009 (0009_calibrations)
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quality', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('spread_mm', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calibration_version', sa.Integer(), nullable=True))
    op.create_table(
        'digests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('first_seq', sa.BigInteger(), nullable=False),
        sa.Column('t', sa.BigInteger(), nullable=False),
        sa.Column('readings', sa.Integer(), nullable=False),
        sa.Column('level_min_mm', sa.Integer(), nullable=True),
        sa.Column('level_max_mm', sa.Integer(), nullable=True),
        sa.Column('battery_mv', sa.Integer(), nullable=True),
        sa.Column('flags', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_id', 'seq', name='uq_digests_device_seq'),
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index('ix_digests_station_t', ['station_id', 't'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_index('ix_digests_station_t')
    op.drop_table('digests')
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.drop_column('calibration_version')
        batch_op.drop_column('spread_mm')
        batch_op.drop_column('quality')
