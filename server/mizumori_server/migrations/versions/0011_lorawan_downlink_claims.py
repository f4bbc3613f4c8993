"""devices.delivery_key and downlink_*: LoRaWAN downlinks claimed in the database (issue 19)

delivery_key: the last delivery report queued for a device (its kind and seq, the frame
counter and payload of the uplink that asked). Copies of one uplink (one per gateway, a
retried webhook) may reach different workers; the worker that claims the report here (a
conditional UPDATE) queues it, so each uplink asks once. Before, each worker kept this in
memory and two workers could queue a report twice.
downlink_at, downlink_tries, downlink_uplinks, uplink_fcnt: when the config downlinks were
last queued, how often, and the uplinks heard since (copies of a frame, same frame counter,
count once) while the device still reported an older version: after two such uplinks and a
wait doubling from an hour to a day, it gets them again, in place of what waits in its
queue (before, a lost config downlink was never repeated).

Revision ID: 0011
Revises: 0010 (0010_quality_and_digests)
Create Date: 2026-11-28 16:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('downlink_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('downlink_tries', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('downlink_uplinks', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('uplink_fcnt', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('uplink_fcnt')
        batch_op.drop_column('downlink_uplinks')
        batch_op.drop_column('downlink_tries')
        batch_op.drop_column('downlink_at')
        batch_op.drop_column('delivery_key')
