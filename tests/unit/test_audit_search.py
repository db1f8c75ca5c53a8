"""审计日志 search: filters as queries, keyset pages, exports; bad filters are messages, not errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from portal.db import db
from portal.models import AuditEvent
from portal.services import audit_search

T0 = datetime(2026, 9, 1, 0, 0, 0)  # UTC: 08:00 in Beijing


def add(account="lisi@mail.xamd.edu.cn", event="login_complete", outcome="ok", ip="202.117.0.5", at=T0, **more):
    return AuditEvent.create(account=account, event=event, outcome=outcome, ip=ip, created_at=at, **more)


def search(**args) -> list[AuditEvent]:
    filters = audit_search.parse(MultiDict(args))
    assert filters.errors == {}
    return list(audit_search.export(filters))


def accounts_of(rows) -> list[str]:
    return [row.account for row in rows]


def errors(**args) -> dict[str, str]:
    return audit_search.parse(MultiDict(args)).errors


# --- filters ---


def test_no_filter_lists_everything_newest_first(ctx):
    old, new, newest = add(at=T0), add(at=T0 + timedelta(hours=1)), add(at=T0 + timedelta(hours=2))
    assert [row.id for row in search()] == [newest.id, new.id, old.id]


def test_account_is_a_prefix_case_insensitive_and_wildcards_are_plain(ctx):
    for account in ("lisi@mail.xamd.edu.cn", "lisi2@mail.xamd.edu.cn", "zhang@x.cn", "l_si@x.cn", "l%x@x.cn"):
        add(account=account)
    assert sorted(accounts_of(search(account="LiSi"))) == ["lisi2@mail.xamd.edu.cn", "lisi@mail.xamd.edu.cn"]
    assert accounts_of(search(account="lisi@mail.xamd.edu.cn")) == ["lisi@mail.xamd.edu.cn"]
    assert accounts_of(search(account="l_")) == ["l_si@x.cn"]  # "_" is not "any character"
    assert accounts_of(search(account="l%")) == ["l%x@x.cn"]
    assert search(account="nobody") == []


def test_account_prefix_includes_characters_beyond_ascii(ctx):
    add(account="张三@x.cn")
    add(account="张@x.cn")
    assert sorted(accounts_of(search(account="张三"))) == ["张三@x.cn"]


def test_event_and_outcome_are_exact(ctx):
    add(event="login_password", outcome="fail", account="a@x.cn")
    add(event="login_password", outcome="ok", account="b@x.cn")
    add(event="login_complete", outcome="ok", account="c@x.cn")
    assert sorted(accounts_of(search(event="login_password"))) == ["a@x.cn", "b@x.cn"]
    assert accounts_of(search(event="login_password", outcome="fail")) == ["a@x.cn"]
    assert accounts_of(search(outcome="ok", account="c")) == ["c@x.cn"]
    assert search(event="login") == []  # not a prefix


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("202.117.0.5", ["202.117.0.5"]),
        ("202.117.0.0/24", ["202.117.0.5", "202.117.0.50"]),
        ("202.117.0.0/16", ["202.117.0.5", "202.117.0.50", "202.117.9.1"]),
        ("202.117.0.0/20", ["202.117.0.5", "202.117.0.50", "202.117.9.1"]),  # 202.117.0–15.x
        ("202.117.0.0/21", ["202.117.0.5", "202.117.0.50"]),  # 202.117.0–7.x: not .9
        ("202.117.0.0/26", ["202.117.0.5", "202.117.0.50"]),
        ("202.117.0.0/29", ["202.117.0.5"]),
        ("202.0.0.0/8", ["202.117.0.5", "202.117.0.50", "202.117.9.1", "202.118.1.1"]),
        ("200.0.0.0/6", ["202.117.0.5", "202.117.0.50", "202.117.9.1", "202.118.1.1"]),
        ("0.0.0.0/0", ["10.0.0.1", "202.117.0.5", "202.117.0.50", "202.117.9.1", "202.118.1.1", "20.117.0.5"]),
        ("20.117.0.0/16", ["20.117.0.5"]),  # not 202.117.x: the prefix ends at a dot
    ],
)
def test_ipv4_addresses_and_networks_of_any_length(ctx, query, expected):
    for ip in ("202.117.0.5", "202.117.0.50", "202.117.9.1", "202.118.1.1", "10.0.0.1", "20.117.0.5", "2001:da8::1"):
        add(ip=ip)
    assert sorted(row.ip for row in search(ip=query)) == sorted(expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("2001:da8::1", ["2001:da8::1"]),
        ("2001:DA8:0:0::1", ["2001:da8::1"]),  # any spelling of the address
        ("2001:da8::/32", ["2001:da8::1", "2001:da8:8000::2", "2001:da8:1:2::3"]),
        ("2001:da8::/33", ["2001:da8::1", "2001:da8:1:2::3"]),
        ("2001:da8:1:2::/64", ["2001:da8:1:2::3"]),
        ("::/0", ["2001:da8::1", "2001:da8:8000::2", "2001:da8:1:2::3", "2400:1::1", "::1"]),
        ("::/64", ["::1"]),
    ],
)
def test_ipv6_addresses_and_networks(ctx, query, expected):
    for ip in ("2001:da8::1", "2001:da8:8000::2", "2001:da8:1:2::3", "2400:1::1", "::1", "202.117.0.5"):
        add(ip=ip)
    assert sorted(row.ip for row in search(ip=query)) == sorted(expected)


def test_time_range_is_beijing_time_and_until_includes_its_day_or_minute(ctx):
    # Beijing is UTC+8: 2026-09-01 in Beijing is 2026-08-31 16:00 – 2026-09-01 16:00 UTC.
    add(account="before@x.cn", at=datetime(2026, 8, 31, 15, 59, 59))
    add(account="first@x.cn", at=datetime(2026, 8, 31, 16, 0, 0))
    add(account="last@x.cn", at=datetime(2026, 9, 1, 15, 59, 59, 999999))
    add(account="after@x.cn", at=datetime(2026, 9, 1, 16, 0, 0))
    day = search(since="2026-09-01", until="2026-09-01")
    assert sorted(accounts_of(day)) == ["first@x.cn", "last@x.cn"]
    assert accounts_of(search(since="2026-09-01 23:59")) == ["after@x.cn", "last@x.cn"]
    assert accounts_of(search(until="2026-09-01T00:00")) == ["first@x.cn", "before@x.cn"]  # the whole minute
    assert accounts_of(search(since="2026-09-02 00:00:00", until="2026-09-02T00:00:00")) == ["after@x.cn"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"ip": "202.117.0.300"}, "ip"),
        ({"ip": "lisi"}, "ip"),
        ({"ip": "10.0.0.0/33"}, "ip"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"until": "0001-01-01"}, "until"),
        ({"until": "9999-12-31"}, "until"),
        ({"since": "2026-09-02", "until": "2026-09-01"}, "until"),
        ({"event": "'; drop table audit_event; --"}, "event"),
        ({"outcome": "OK!"}, "outcome"),
        ({"account": "a" * 255}, "account"),
    ],
)
def test_bad_filters_are_reported_by_field(ctx, args, field):
    found = errors(**args)
    assert list(found) == [field] and found[field]


def test_an_unknown_event_code_may_be_searched(ctx):
    add(event="from_a_newer_release")
    assert len(search(event="from_a_newer_release")) == 1


# --- pages ---


def test_pages_follow_each_other_without_gaps_or_repeats(ctx):
    # Equal times on purpose: the id breaks the tie, so no row is skipped or shown twice.
    rows = [add(account=f"u{n:02d}@x.cn", at=T0 + timedelta(minutes=n // 3)) for n in range(23)]
    filters = audit_search.parse(MultiDict())
    seen, cursor, sizes = [], "", []
    while True:
        page = audit_search.page(filters, cursor, size=5)
        seen += [row.id for row in page.events]
        sizes.append(len(page.events))
        if page.cursor is None:
            break
        cursor = page.cursor
    expected = [row.id for row in sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True)]
    assert seen == expected and sizes == [5, 5, 5, 5, 3]


def test_an_exactly_full_last_page_has_no_next_page(ctx):
    for n in range(4):
        add(at=T0 + timedelta(seconds=n))
    page = audit_search.page(audit_search.parse(MultiDict()), size=4)
    assert len(page.events) == 4 and page.cursor is None


def test_pages_keep_the_filters(ctx):
    for n in range(12):
        add(outcome="fail" if n % 2 else "ok", at=T0 + timedelta(seconds=n))
    filters = audit_search.parse(MultiDict({"outcome": "fail"}))
    first = audit_search.page(filters, size=4)
    second = audit_search.page(filters, first.cursor, size=4)
    assert [row.outcome for row in first.events + second.events] == ["fail"] * 6 and second.cursor is None


def test_an_ipv6_network_search_reads_on_past_rows_it_drops(ctx, monkeypatch):
    monkeypatch.setattr(audit_search, "SCAN_BATCH", 4)
    monkeypatch.setattr(audit_search, "SCAN_LIMIT", 8)
    wanted = [add(ip="2001:da8::1", at=T0)]
    for n in range(10):
        add(ip="2001:da8:8000::1", at=T0 + timedelta(seconds=n + 1))
    filters = audit_search.parse(MultiDict({"ip": "2001:da8::/33"}))  # SQL reads 2001:da8:*, Python drops :8000
    pages, cursor = [], ""
    while True:
        page = audit_search.page(filters, cursor, size=2)
        pages.append([row.id for row in page.events])
        if page.cursor is None:
            break
        cursor = page.cursor
    assert pages == [[], [wanted[0].id]]  # the first page read 8 rows and found none


BAD_CURSORS = ["abc", "1.2.3", "-5.1", "1.", ".1", "1" * 20 + ".1", "9" * 19 + ".1", "1." + "9" * 19]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_is_a_value_error(ctx, cursor):
    with pytest.raises(ValueError):
        audit_search.page(audit_search.parse(MultiDict()), cursor)


def test_a_far_cursor_is_only_an_empty_or_full_page(ctx):
    add()
    filters = audit_search.parse(MultiDict())
    assert audit_search.page(filters, "1.1").events == []  # 1970: nothing older
    assert len(audit_search.page(filters, f"250000000000000000.{2**62}").events) == 1


def test_the_export_reads_in_batches(ctx, monkeypatch):
    monkeypatch.setattr(audit_search, "EXPORT_BATCH", 3)
    for n in range(10):
        add(at=T0 + timedelta(seconds=n), account=f"u{n}@x.cn")
    rows = search()
    assert accounts_of(rows) == [f"u{n}@x.cn" for n in reversed(range(10))]


def test_the_searches_use_the_indexes(ctx):
    """Each filter's query reads an index range in page order (EXPLAIN), not the whole table."""
    for args in ({"account": "lisi"}, {"event": "login_complete"}, {"outcome": "fail"}, {"ip": "202.117.0.0/16"}):
        filters = audit_search.parse(MultiDict(args))
        sql, params = audit_search._query(filters, (T0, 5)).limit(51).sql()
        explain = "EXPLAIN QUERY PLAN " if _sqlite() else "EXPLAIN "
        plan = " ".join(str(row) for row in db.execute_sql(explain + sql, params))
        assert "audit_event_" in plan, (args, plan)


def _sqlite() -> bool:
    from peewee import SqliteDatabase

    return isinstance(db.obj, SqliteDatabase)


def test_sqlite_reads_a_rare_prefix_by_its_index_and_a_common_one_in_time_order(ctx, monkeypatch):
    from peewee import SqliteDatabase

    from portal.services import audit_plan

    if not isinstance(db.obj, SqliteDatabase):
        pytest.skip("PostgreSQL chooses by its own statistics")
    monkeypatch.setattr(audit_plan, "DENSE", 3)
    for n in range(5):
        add(account=f"common{n}@x.cn", outcome="fail" if n % 2 else "ok", at=T0 + timedelta(seconds=n))
    add(account="rare@x.cn", ip="10.1.1.1")
    cases = {
        "account=rare": ("audit_event_account_prefix", 1),
        "account=common": ("audit_event_created_at_id", 5),
        "account=common&outcome=fail": ("audit_event_outcome_created_at_id", 2),
        "account=common&ip=10.1.0.0/16": ("audit_event_ip_prefix", 0),
        "outcome=fail": (None, 2),  # no prefix: the planner's choice
    }
    for query, (index, count) in cases.items():
        filters = audit_search.parse(MultiDict([part.split("=") for part in query.split("&")]))
        sql = audit_search._query(filters, None).sql()[0]
        assert (f'INDEXED BY "{index}"' in sql) if index else ("INDEXED BY" not in sql), (query, sql)
        assert len(list(audit_search.export(filters))) == count, query
