"""Versioned schema: each migration runs once, in order; init-db is idempotent."""

from __future__ import annotations

from collections.abc import Callable

from portal.db import db
from portal.models import ALL_MODELS, SchemaVersion


def _initial_schema() -> None:
    db.create_tables(ALL_MODELS, safe=True)


# Append new migrations here; never edit one that has shipped.
MIGRATIONS: list[tuple[int, str, Callable[[], None]]] = [
    (1, "initial schema", _initial_schema),
]


def current_version() -> int:
    if not SchemaVersion.table_exists():
        return 0
    latest = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return latest.version if latest else 0


def upgrade() -> list[str]:
    """Apply pending migrations; return the names of those applied."""
    applied = []
    for version, name, migrate in MIGRATIONS:
        with db.atomic():
            if version <= current_version():
                continue
            migrate()
            SchemaVersion.create(version=version)
            applied.append(f"{version}: {name}")
    return applied
