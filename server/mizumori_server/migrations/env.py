"""Alembic environment: the engine comes from mizumori_server.db (no alembic.ini)."""

from alembic import context
from mizumori_server.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table (copy, drop, rename) to drop a column; with foreign
        # keys on, dropping `devices` would first delete every row that references it
        # (ON DELETE CASCADE: readings, installs, …). Off for the migration only.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:  # never back to the pool without foreign keys: a new one gets them on
            connection.invalidate()
