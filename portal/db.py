"""Database: one peewee proxy, bound at app start to SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as connect_url

db = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
}


def open_database(url: str, root: str) -> peewee.Database:
    """Build the database for a URL; relative SQLite paths are resolved against ``root``."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = parsed.path[1:] if url.startswith("sqlite:///") else parsed.path
        if path != ":memory:" and not Path(path).is_absolute():
            path = str(Path(root) / path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite serialises writers; a generous busy timeout lets several workers queue.
        return peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    return connect_url(url)


def bind(database: peewee.Database) -> None:
    db.initialize(database)


def init_app(app) -> None:
    """Open a connection per request and close it afterwards."""

    @app.before_request
    def _connect() -> None:
        db.connect(reuse_if_open=True)

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
