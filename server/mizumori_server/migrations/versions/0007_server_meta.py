"""server_meta: facts about the database itself (issue 21, item 3)

One row per name; `secret_key_check` holds the check value of the key the database's
secrets are sealed under (keys.py): a server started with another MIZUMORI_SECRET_KEY
refuses to start instead of answering every upload with a 500. The row is written at the
first start after this migration (from the key that opens the secrets already there).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'server_meta',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('server_meta')
