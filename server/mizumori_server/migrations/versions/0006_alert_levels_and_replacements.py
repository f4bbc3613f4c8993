"""alert level history; device replacement needs consent (issue 18)

alerts.levels: each river level an alert reached and when ([{"level": k, "at": t}], oldest
first; filled here from the alert's events). device_installs.removed_by / replaced_by: who
took a device off its station and which device took its place; at most one current install
per station (a unique index). provisioning_allowlist.may_replace: whether a self-registering
board may replace the device installed at its station.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts') as t:
        t.add_column(sa.Column('levels', sa.JSON(), nullable=False, server_default='[]'))
    # One current install per station (only a race could have left two: the newest stays).
    op.execute("UPDATE device_installs SET removed_at = installed_at WHERE removed_at IS NULL "
               "AND id NOT IN (SELECT max(id) FROM device_installs WHERE removed_at IS NULL "
               "GROUP BY station_id)")
    with op.batch_alter_table('device_installs') as t:
        t.add_column(sa.Column('removed_by', sa.String(length=64), nullable=True))
        t.add_column(sa.Column('replaced_by', sa.Integer(), nullable=True))
        t.create_index('uq_device_installs_station_current', ['station_id'], unique=True,
                       sqlite_where=sa.text('removed_at IS NULL'),
                       postgresql_where=sa.text('removed_at IS NULL'))
    with op.batch_alter_table('provisioning_allowlist') as t:
        t.add_column(sa.Column('may_replace', sa.Boolean(), nullable=False,
                               server_default=sa.false()))
    # The level history of the river-level alerts already there, from their events.
    conn = op.get_bind()
    history: dict[int, list[dict[str, int]]] = {}
    for alert_id, level, at in conn.execute(sa.text(
            "SELECT e.alert_id, e.level, e.at FROM alert_events e JOIN alerts a "
            "ON a.id = e.alert_id WHERE a.type = 'level' AND e.kind IN "
            "('opened', 'raised', 'lowered') ORDER BY e.id")):
        history.setdefault(alert_id, []).append({"level": level, "at": at})
    for alert_id, levels in history.items():
        conn.execute(sa.text("UPDATE alerts SET levels = :levels WHERE id = :id")
                     .bindparams(sa.bindparam("levels", type_=sa.JSON())),
                     {"levels": levels, "id": alert_id})


def downgrade() -> None:
    with op.batch_alter_table('provisioning_allowlist') as t:
        t.drop_column('may_replace')
    with op.batch_alter_table('device_installs') as t:
        t.drop_index('uq_device_installs_station_current')
        t.drop_column('replaced_by')
        t.drop_column('removed_by')
    with op.batch_alter_table('alerts') as t:
        t.drop_column('levels')
