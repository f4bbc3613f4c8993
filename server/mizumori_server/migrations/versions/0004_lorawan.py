"""LoRaWAN integrations, link metadata on readings, downlink state on devices

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lorawan_integrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('api_url', sa.String(length=500), nullable=False),
    sa.Column('api_token_enc', sa.LargeBinary(), nullable=True),
    sa.Column('application_id', sa.String(length=64), nullable=False),
    sa.Column('webhook_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('readings') as t:
        t.add_column(sa.Column('link_rssi', sa.Integer(), nullable=True))
        t.add_column(sa.Column('link_snr', sa.Float(), nullable=True))
        t.add_column(sa.Column('link_gateways', sa.Integer(), nullable=True))
        t.add_column(sa.Column('link_dr', sa.Integer(), nullable=True))
    with op.batch_alter_table('devices') as t:
        t.add_column(sa.Column('ns_device_id', sa.String(length=64), nullable=True))
        t.add_column(sa.Column('downlink_version', sa.Integer(), nullable=False,
                               server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('devices') as t:
        t.drop_column('downlink_version')
        t.drop_column('ns_device_id')
    with op.batch_alter_table('readings') as t:
        for c in ('link_dr', 'link_gateways', 'link_snr', 'link_rssi'):
            t.drop_column(c)
    op.drop_table('lorawan_integrations')
