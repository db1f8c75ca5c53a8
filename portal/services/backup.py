"""flask --app wsgi backup FILE: a consistent copy of a SQLite database while the portal runs.

SQLite's online backup API copies page by page under a read transaction, so writers of other
workers only wait for short steps and the copy is one moment of the database (WAL included). The
copy is written next to FILE and renamed into place: FILE is either the old backup or the new one,
never half of one. PostgreSQL is backed up with its own tools (pg_dump), as the README says.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import peewee

from portal.db import db
from portal.services.errors import InvalidInput

PAGES_PER_STEP = 1024  # 4 MiB at a time: other workers' writes wait at most one step


def sqlite_backup(target: str) -> int:
    """Copy the bound SQLite database to ``target``; returns its size in bytes."""
    if not isinstance(db.obj, peewee.SqliteDatabase):
        raise InvalidInput("backup copies SQLite databases; back up PostgreSQL with pg_dump (see the README)")
    source_path = Path(db.obj.database).resolve()
    destination = Path(target).resolve()
    if destination == source_path:
        raise InvalidInput("the backup file must not be the database itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=PAGES_PER_STEP)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            copy.close()
    finally:
        source.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, destination)
    return destination.stat().st_size
