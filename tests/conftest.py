"""Shared fixtures: an app on a fresh database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from flask import g, request_started
from peewee import PostgresqlDatabase

from portal import create_app, crypto, migrations
from portal.db import db
from portal.models import ALL_MODELS, Factor, SchemaVersion
from portal.services import accounts, passwords
from tests.helpers import Browser
from tests.support.sms_stub import sms_stub, sms_stub_server  # noqa: F401 -- fixtures for every test

PASSWORD = "Correct-horse-9"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("PORTAL_TEST_DATABASE_URL") else [])


def require_integration() -> bool:
    return os.environ.get("PORTAL_REQUIRE_INTEGRATION") == "1"


def skip_or_fail(reason: str) -> None:
    """Missing real peers skip locally, but fail where PORTAL_REQUIRE_INTEGRATION=1 (CI)."""
    if require_integration():
        pytest.fail(f"integration prerequisite missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.db'}"
    return os.environ["PORTAL_TEST_DATABASE_URL"]


def make_config(database_url: str, **overrides) -> dict:
    config = {
        "ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "DATA_KEY": "test-data-key-" + "y" * 32,
        "PUBLIC_URL": "http://127.0.0.1:8000",
    }
    config.update(overrides)
    return config


@pytest.fixture
def app_config(database_url) -> dict:
    """Tests may edit this before the ``app`` fixture is first used."""
    return make_config(database_url)


# PostgreSQL databases whose schema this run built and no test has changed since: a test there starts
# from emptied tables (DELETEs, id sequences back to 1: milliseconds; TRUNCATE takes half a second)
# instead of dropping and migrating ~30 tables (seconds per test).
_BUILT_SCHEMAS: set[str] = set()
# Tests of these modules change the schema itself (migrations from older releases, dropped tables).
SCHEMA_CHANGING_MODULES = ("test_migrations", "test_cli", "test_readme_examples", "test_two_hosts")


# A migrated, empty SQLite database made by the run's first test: later tests start from a copy.
_SQLITE_TEMPLATE: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _schema_changes_rebuild(request):
    """After a test that changes the schema (see SCHEMA_CHANGING_MODULES), the next one rebuilds it."""
    yield
    if request.node.module.__name__.rsplit(".", 1)[-1] in SCHEMA_CHANGING_MODULES:
        _BUILT_SCHEMAS.clear()


@pytest.fixture
def app(app_config, tmp_path_factory):
    url = str(app_config["DATABASE_URL"])
    sqlite_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if sqlite_file and "path" in _SQLITE_TEMPLATE and not sqlite_file.exists():
        shutil.copyfile(_SQLITE_TEMPLATE["path"], sqlite_file)
    app = create_app(app_config)
    with app.app_context():
        with db.connection_context():
            if isinstance(db.obj, PostgresqlDatabase):  # a shared server database: start empty
                _empty_postgresql(url)
            else:
                migrations.upgrade()  # one query on a copy of the template
                if sqlite_file and "path" not in _SQLITE_TEMPLATE:
                    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
                    template = tmp_path_factory.mktemp("schema") / "template.db"
                    shutil.copyfile(sqlite_file, template)
                    _SQLITE_TEMPLATE["path"] = template
    yield app
    with app.app_context():
        db.close()


def _empty_postgresql(url: str) -> None:
    if url in _BUILT_SCHEMAS:
        models = [m for m in reversed(ALL_MODELS) if m is not SchemaVersion]  # children first
        serial = [m._meta.table_name for m in models if m._meta.primary_key.field_type == "AUTO"]
        with db.atomic():
            db.execute_sql("; ".join(f'DELETE FROM "{m._meta.table_name}"' for m in models))
            db.execute_sql(
                "SELECT " + ", ".join(f"setval(pg_get_serial_sequence('\"{t}\"', 'id'), 1, false)" for t in serial)
            )
        return
    db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=True)
    migrations.upgrade()
    _BUILT_SCHEMAS.add(url)


@pytest.fixture
def ctx(app):
    """An app context with an open database connection, for service tests."""
    with app.test_request_context():
        with db.connection_context():
            yield app


@pytest.fixture
def user(ctx):
    return accounts.create("alice@mail.xamd.edu.cn", PASSWORD, name="Alice")


@pytest.fixture
def totp_secret(ctx, user) -> str:
    """Bind 第三方 OTP to ``user`` directly in the database; returns the secret."""
    secret = pyotp.random_base32()
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
    return secret


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server (aiosmtpd on 127.0.0.1) for the whole run; it keeps what it receives."""
    from tests.smtp_server import SmtpBackend

    server = SmtpBackend().start()
    yield server
    server.stop()


@pytest.fixture
def outbox(app, smtp_server):
    """The portal sends mail (备用邮箱 codes) through ``smtp_server``; read them there."""
    app.config["SMTP_URL"] = smtp_server.url
    return smtp_server


@pytest.fixture
def hashing_fails(monkeypatch) -> None:
    """argon2 cannot get its memory (what a capped address space, e.g. Dovecot's auth process, causes)."""

    class OutOfMemory(PasswordHasher):
        def verify(self, *_args):
            raise VerificationError("Memory allocation error")

    failing = OutOfMemory()
    monkeypatch.setattr(passwords, "_hasher", lambda: failing)


@pytest.fixture
def fresh_g():
    """Give every test-client request its own ``g``, as in production.

    While ``ctx`` (which the ``user`` fixture needs) is open, Flask reuses its app context for
    test-client requests, so ``g`` (Flask-WTF's cached CSRF token, the guard's cookies) would
    leak from one request, or one browser, into the next.
    """

    def clear(_sender, **_extra):
        for name in list(g):
            g.pop(name)

    request_started.connect(clear)
    yield
    request_started.disconnect(clear)


@pytest.fixture
def browser(app) -> Browser:
    return Browser(app.test_client())
