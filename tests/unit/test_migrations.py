"""Versioned schema: upgrade applies each migration once, in order."""

from __future__ import annotations

from peewee import PostgresqlDatabase

from portal import migrations
from portal.db import db
from portal.models import ALL_MODELS, SchemaVersion


def test_upgrade_twice_is_idempotent(ctx):
    assert migrations.current_version() == migrations.MIGRATIONS[-1][0]
    assert migrations.upgrade() == []
    assert migrations.upgrade() == []
    assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == [
        version for version, _, _ in migrations.MIGRATIONS
    ]


def test_upgrade_from_an_empty_database(ctx):
    db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=isinstance(db.obj, PostgresqlDatabase))
    assert migrations.current_version() == 0
    applied = migrations.upgrade()
    assert applied == [f"{version}: {name}" for version, name, _ in migrations.MIGRATIONS]
    assert migrations.current_version() == migrations.MIGRATIONS[-1][0]
    for model in ALL_MODELS:
        assert model.table_exists(), model.__name__
    assert migrations.upgrade() == []


def test_migration_versions_are_increasing():
    versions = [version for version, _, _ in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
