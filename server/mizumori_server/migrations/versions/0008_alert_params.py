"""alert values: an alert's message in either language (issue 18)

alerts.params: what the alert is about as values (the level, the rate and its limit, the
voltage and its threshold, the fault flags, ...), from which the API writes its message in
Japanese or English (alerts.describe). Filled here for the alerts already there from their
value and their English message, where that says enough; the others keep their message.

Revision ID: 0008
Revises: 0007 (0007_server_meta)
Create Date: 2026-11-29 12:00:00
"""

import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _params(type_: str, value: float | None, message: str) -> dict[str, Any]:
    m: re.Match[str] | None
    if type_ == "level" and value is not None:
        return {"level_mm": int(value)}
    if type_ == "rise" and value is not None:
        m = re.search(r"\(limit (-?[0-9.]+) m/h\)", message)
        if m:
            return {"rate_mm_h": int(value), "limit_mm_h": round(float(m.group(1)) * 1000)}
    if type_ == "battery" and value is not None:
        m = re.search(r"\(low below ([0-9.]+) V\)", message)
        if m:
            return {"battery_mv": int(value), "low_mv": round(float(m.group(1)) * 1000)}
    if type_ == "fault":
        m = re.search(r"in the last ([0-9]+) readings: ([a-z_, ]+)$", message)
        if m:
            return {"readings": int(m.group(1)),
                    "flags": [f for f in m.group(2).split(", ") if f]}
    if type_ == "queue_overflow" and value is not None:
        m = re.search(r"\(seq ([0-9]+)\)", message)
        if m:
            return {"dropped": int(value), "first_seq": int(m.group(1))}
    if type_ == "offline" and value is not None:
        m = re.search(r"expected every ([0-9]+) min", message)
        if m:
            return {"last_seen": int(value), "expected_s": int(m.group(1)) * 60}
    return {}


def upgrade() -> None:
    with op.batch_alter_table('alerts') as t:
        t.add_column(sa.Column('params', sa.JSON(), nullable=False, server_default='{}'))
    conn = op.get_bind()
    for alert_id, type_, value, message in conn.execute(sa.text(
            "SELECT id, type, value, message FROM alerts")).all():
        params = _params(type_, value, message or "")
        if params:
            conn.execute(sa.text("UPDATE alerts SET params = :params WHERE id = :id")
                         .bindparams(sa.bindparam("params", type_=sa.JSON())),
                         {"params": params, "id": alert_id})


def downgrade() -> None:
    with op.batch_alter_table('alerts') as t:
        t.drop_column('params')
