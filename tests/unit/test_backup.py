"""flask --app wsgi backup FILE: a consistent SQLite copy while the portal writes; restore is a copy back."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import peewee

from portal.db import db
from portal.models import AuditEvent, User
from portal.services import accounts, audit
from tests.conftest import PASSWORD


def test_backup_copies_the_database_and_a_restore_brings_it_back(app, tmp_path):
    with app.app_context():
        if not isinstance(db.obj, peewee.SqliteDatabase):
            assert_postgresql_refused(app, tmp_path)
            return
        live = db.obj.database
        with db.connection_context():
            accounts.create("kept@mail.xamd.edu.cn", PASSWORD)
        target = tmp_path / "backups" / "portal.db"
        result = app.test_cli_runner().invoke(args=["backup", str(target)])
        assert result.exit_code == 0, result.output
        assert f"backed up to {target}" in result.output
        assert not target.with_name("portal.db.partial").exists()
        with sqlite3.connect(target) as copy:
            assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert copy.execute("SELECT count(*) FROM user WHERE account = 'kept@mail.xamd.edu.cn'").fetchone() == (1,)

        with db.connection_context():  # lost after the backup …
            User.delete().where(User.account == "kept@mail.xamd.edu.cn").execute()
        assert db.is_closed()
        # … restored as the README says: portal stopped, -wal/-shm removed, the file copied over the database.
        for suffix in ("-wal", "-shm"):
            Path(live + suffix).unlink(missing_ok=True)
        shutil.copyfile(target, live)
        with db.connection_context():
            assert User.by_account("kept@mail.xamd.edu.cn") is not None


def test_a_backup_taken_while_others_write_is_one_consistent_moment(app, ctx, tmp_path):
    if not isinstance(db.obj, peewee.SqliteDatabase):
        assert_postgresql_refused(app, tmp_path)
        return
    stop = threading.Event()

    def write():
        with app.app_context(), db.connection_context():
            while not stop.is_set():
                audit.record("logout", account="writer@mail.xamd.edu.cn")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for attempt in range(3):
            target = tmp_path / f"copy-{attempt}.db"
            assert app.test_cli_runner().invoke(args=["backup", str(target)]).exit_code == 0
            with sqlite3.connect(target) as copy:
                assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        stop.set()
        writer.join()
    assert AuditEvent.select().count() > 0


def test_backup_refuses_its_own_file(app, ctx, tmp_path):
    if not isinstance(db.obj, peewee.SqliteDatabase):
        assert_postgresql_refused(app, tmp_path)
        return
    result = app.test_cli_runner().invoke(args=["backup", db.obj.database])
    assert result.exit_code == 1 and "must not be the database itself" in result.output


def assert_postgresql_refused(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and "pg_dump" in result.output
    assert not (tmp_path / "x.db").exists()
