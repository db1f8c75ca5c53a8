"""Benchmark (make bench): the console's pages on a large database, SQLite and PostgreSQL.

Builds the database with demo-large (default 50,000 accounts and 2,000,000 audit events over 30 days)
once and reuses it (SQLite under instance/, PostgreSQL in PORTAL_BENCH_DATABASE_URL, default the
database ``bench`` on 127.0.0.1, created if missing; rebuilt when the size asked for differs). Then
times ``/admin`` (统计报表) and a filtered ``/admin/audit`` with an admin's session: median and p95 over
``--requests`` requests against the 0.3 s goal. A page this build does not have prints "n/a".

    python -m bench.admin_pages [--users N] [--events M] [--requests R] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2

from portal import create_app, crypto, migrations
from portal.db import db
from portal.models import ALL_MODELS, Factor, Setting, User
from portal.services import accounts, demo_large, sessions
from portal.services.client import Client

GOAL_SECONDS = 0.3
PAGES = ("/admin", "/admin/audit?account=zhang&outcome=fail")
ADMIN = "bench-admin@mail.xamd.edu.cn"
SIZE_KEY = "bench.admin_pages.size"
INSTANCE = Path(__file__).resolve().parent.parent / "instance"


def config(database_url: str) -> dict:
    return {
        "ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-" + "s" * 40,
        "DATA_KEY": "bench-" + "d" * 40,
    }


def ensure_postgres_database(url: str) -> None:
    """CREATE DATABASE when the bench database does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    connection = psycopg2.connect(server)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def prepare(app, users: int, events: int) -> str:
    """Seed the database unless it holds this size already; an admin's session token."""
    size = f"{users}/{events}"
    with app.app_context(), db.connection_context():
        migrations.upgrade()
        marker = Setting.get_or_none(Setting.key == SIZE_KEY)
        if marker is None or marker.value != size:
            if User.select().exists():
                db.drop_tables(
                    list(reversed(ALL_MODELS)), safe=True, cascade=isinstance(db.obj, peewee.PostgresqlDatabase)
                )
                migrations.upgrade()
            started = time.monotonic()
            demo_large.seed(users, events, say=lambda line: None)
            Setting.insert(key=SIZE_KEY, value=size).on_conflict(
                conflict_target=[Setting.key], update={Setting.value: size}
            ).execute()
            print(f"  built {size} (accounts/events) in {time.monotonic() - started:.0f} s")
            # Fresh statistics, and on PostgreSQL the visibility map for index-only scans (autovacuum's job
            # in production, not yet done right after a bulk load).
            db.execute_sql("VACUUM ANALYZE" if isinstance(db.obj, peewee.PostgresqlDatabase) else "ANALYZE")
        admin = User.by_account(ADMIN) or accounts.create(ADMIN, "Bench-password-1", admin=True)
        if not Factor.select().where(Factor.user == admin).exists():
            Factor.create(user=admin, method="totp", secret=crypto.encrypt("JBSWY3DPEHPK3PXP"))
        return sessions.start(admin, sessions.FULL, Client.of("127.0.0.1", "bench"))


def time_pages(app, token: str, count: int) -> None:
    web = app.test_client()
    web.set_cookie("portal_sid", token)
    for page in PAGES:
        first = web.get(page)
        if first.status_code == 404:
            print(f"  {page:45} n/a (not in this build)")
            continue
        assert first.status_code == 200, (page, first.status_code)
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            response = web.get(page)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200
        p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
        verdict = "ok" if p95 < GOAL_SECONDS else "SLOW"
        median = statistics.median(samples)
        print(f"  {page:45} median={median * 1000:7.1f} ms  p95={p95 * 1000:7.1f} ms  goal<{GOAL_SECONDS}s {verdict}")


def run(name: str, database_url: str, args) -> None:
    print(f"{name}: {args.users} accounts, {args.events} audit events (30 days)")
    app = create_app(config(database_url))
    token = prepare(app, args.users, args.events)
    time_pages(app, token, args.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    INSTANCE.mkdir(exist_ok=True)
    run("SQLite", f"sqlite:///{INSTANCE / f'bench-admin-{args.users}-{args.events}.db'}", args)
    if not args.no_postgres:
        url = os.environ.get("PORTAL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
        ensure_postgres_database(url)
        run("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
