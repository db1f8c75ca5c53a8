"""Which index a 审计日志 page reads on SQLite.

PostgreSQL keeps statistics on value ranges and picks well by itself. SQLite's planner does not know
how many rows an account or IP prefix matches: it took the prefix's index for "u0" (a million rows,
all sorted for one page: 1.4 s on 2M events) and the outcome's for one account's failures (1.6 s).
So on SQLite this module counts, up to ``DENSE``, the rows each prefix matches (an index-only scan
that stops early) and names the index with ``INDEXED BY``:

- a prefix matching at most ``DENSE`` rows: its own index (those rows are fetched and sorted);
- otherwise an exact filter's index (event, outcome, one IP), read in page order;
- otherwise the time index (created_at, id), read newest first until the page is full — the prefix
  matches so many rows that this stops soon, unless they all lie far back in time.
"""

from __future__ import annotations

import peewee as pw

from portal.db import db
from portal.models import AuditEvent

DENSE = 10_000
TIME_INDEX = "audit_event_created_at_id"


def source(ranges: dict[str, pw.Node], exact: list[str]) -> pw.Node | None:
    """The FROM clause of the search on SQLite (None: leave the choice to the database)."""
    if not ranges or not isinstance(db.obj, pw.SqliteDatabase):
        return None
    counts = {index: _count(index, condition) for index, condition in ranges.items()}
    index, count = min(counts.items(), key=lambda item: item[1])
    if count > DENSE:
        index = exact[0] if exact else TIME_INDEX
    return pw.SQL(f'"{AuditEvent._meta.table_name}" AS "t1" INDEXED BY "{index}"')


def _count(index: str, condition: pw.Node) -> int:
    table = pw.SQL(f'"{AuditEvent._meta.table_name}" AS "t1" INDEXED BY "{index}"')
    sample = AuditEvent.select(pw.SQL("1")).from_(table).where(condition).limit(DENSE + 1)
    return AuditEvent.select(pw.fn.COUNT(pw.SQL("*"))).from_(sample.alias("sample")).scalar()
