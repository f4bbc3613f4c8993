"""Alembic environment: the engine comes from mizumori_server.db (no alembic.ini)."""

import contextlib

from alembic import context
from mizumori_server.models import Base
from sqlalchemy.exc import DBAPIError

# pg_advisory_lock's key for "migrating this database" (any constant; "mzmmigr" in ASCII).
# Two migrators at once (two hosts or units starting with MIZUMORI_AUTO_MIGRATE=true) would
# both create the same tables and one fail with an IntegrityError; with the lock the second
# waits, then finds the database at head and has nothing to do. Advisory locks are per
# database, so migrators of other databases on the same server do not wait.
MIGRATION_LOCK = 0x6D7A6D6D69677200

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    postgresql = connection.dialect.name == "postgresql"
    if sqlite:
        # Batch mode rebuilds a table (copy, drop, rename) to drop a column; with foreign
        # keys on, dropping `devices` would first delete every row that references it
        # (ON DELETE CASCADE: readings, installs, …). Off for the migration only.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if postgresql:
        # A session lock, taken and committed before the migration's transaction begins:
        # the migration then reads the version table after the other migrator committed.
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=sqlite)
        check = "PRAGMA foreign_key_check"
        before = set(connection.exec_driver_sql(check).all()) if sqlite else set()
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:  # with foreign keys off nothing stopped a row losing its parent
                new = set(connection.exec_driver_sql(check).all()) - before
                if new:
                    raise RuntimeError(
                        f"the migration left {len(new)} rows whose parent is gone (table, "
                        f"rowid, parent): {sorted(new)[:5]}; restore the copy of the "
                        "database taken before upgrading (docs/operations.md)")
        connection.commit()
    finally:
        if sqlite:  # never back to the pool without foreign keys: a new one gets them on
            connection.invalidate()
        if postgresql:
            # (a connection that broke has lost its lock with its session on the server)
            with contextlib.suppress(DBAPIError):
                connection.rollback()  # a failed migration's transaction, if any
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                connection.commit()
