"""Database: one peewee proxy, bound at app start to SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as connect_url

db = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1}
# Errors that mean "the database cannot answer now" (busy, locked, unreachable, timed out), not a bug:
# the web layer answers them as a temporary failure (503), never a 500.
UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


def open_database(url: str, root: str, timeout: int = 5) -> peewee.Database:
    """Build the database for a URL; relative SQLite paths are resolved against ``root``.

    ``timeout`` bounds every wait for the database, in seconds: SQLite's busy timeout (a writer
    waits that long for another's lock), PostgreSQL's connect and lock timeouts (its statements
    get three times as long).
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = parsed.path[1:] if url.startswith("sqlite:///") else parsed.path
        if path != ":memory:" and not Path(path).is_absolute():
            path = str(Path(root) / path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite serialises writers. Transactions begin IMMEDIATE: they take the write lock at BEGIN,
        # waiting for it under the busy timeout, instead of failing at once when a read done inside
        # the transaction has gone stale by its first write (WAL's "database is locked" snapshot case).
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": timeout * 1000}
        return peewee.SqliteDatabase(path, pragmas=pragmas, timeout=timeout, lock_type="IMMEDIATE")
    options = f"-c lock_timeout={timeout * 1000} -c statement_timeout={timeout * 3000}"
    return connect_url(url, connect_timeout=timeout, options=options)


def bind(database: peewee.Database) -> None:
    db.initialize(database)


def init_app(app) -> None:
    """A request connects at its first query (peewee's autoconnect) and closes the connection afterwards.

    Lazily, so that a request needing no database (a static file, the login form) does not wait for
    one, and an unreachable database fails where the request can say so (e.g. /healthz).
    """

    @app.teardown_appcontext
    def _close(_exc) -> None:
        if not db.is_closed():
            db.close()


def lock_rows(query: peewee.ModelSelect) -> None:
    """Inside a transaction: lock the selected rows until commit.

    PostgreSQL takes row locks (SELECT … FOR UPDATE). SQLite has one writer at a time, and a read
    before the transaction's first write could make that write fail, so nothing is done there.
    """
    if isinstance(db.obj, peewee.PostgresqlDatabase):
        list(query.for_update())
