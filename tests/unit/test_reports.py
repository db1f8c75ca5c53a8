"""Admin reports: adoption, pending forced binding, lockouts by account and by IP, recent failures."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from portal.db import db
from portal.models import AdoptionDaily, AuditDaily, AuditEvent, Factor, LoginSession, Ticket, User, utcnow
from portal.services import (
    accounts,
    audit,
    charts,
    housekeeping,
    policy,
    report_summary,
    report_tables,
    reports,
    sessions,
    throttle,
    tickets,
)
from portal.services.client import Client
from portal.services.errors import Throttled
from tests.conftest import PASSWORD


def test_binding_pending_follows_the_forced_binding_policy(user, totp_secret):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    assert reports.adoption().binding_pending == 0
    accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)  # admins must always bind
    assert reports.adoption().binding_pending == 1
    policy.set_value("force_2fa", "all")
    assert reports.adoption().binding_pending == 2  # bob and the admin; alice has bound
    assert (reports.adoption().protected, reports.adoption().percent) == (1, 33)


def test_no_accounts_is_zero_percent(ctx):
    assert reports.adoption().percent == 0


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2, THROTTLE_IP_FAILURES=3)
def test_lockouts_list_accounts_and_addresses_at_their_limit(ctx):
    now = utcnow()
    for account in ("a@x.cn", "a@x.cn", "b@x.cn"):
        throttle.begin("mail", account, "203.0.113.5", now=now)
    with pytest.raises(Throttled):
        throttle.begin("mail", "c@x.cn", "203.0.113.5", now=now)
    locked = {(lock.scope, lock.key) for lock in reports.lockouts(now)}
    assert locked == {("mail:acct", "a@x.cn"), ("mail:ip", "203.0.113.5")}
    assert all(now < lock.until <= now + timedelta(minutes=15) for lock in reports.lockouts(now))


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2)
def test_a_cap_reached_is_no_lockout(ctx):
    """App pushes and mailed codes are capped on the same counters; reaching a cap locks nobody."""
    for _ in range(2):
        throttle.spend("push", "a@x.cn", "203.0.113.5", 2, 30, what="发送授权请求")
    with pytest.raises(Throttled):
        throttle.spend("push", "a@x.cn", "203.0.113.5", 2, 30, what="发送授权请求")
    assert reports.lockouts() == []
    assert throttle.locked_until("otp", "a@x.cn", "203.0.113.5") is None


def test_recent_failures_leave_out_successes(user):
    audit.record("login_password", user=user)
    audit.record("login_password", user=user, outcome="fail")
    audit.record("push", user=user, outcome="not_me")
    assert [e.outcome for e in reports.recent_failures()] == ["not_me", "fail"]


@pytest.mark.parametrize("mode", ["off", "listed", "all"])
def test_binding_pending_counts_whom_must_bind_names(ctx, mode):
    policy.set_value("force_2fa", mode)
    for i, (admin, listed) in enumerate([(False, False), (False, True), (True, False), (True, True)]):
        user = accounts.create(f"u{i}@x.cn", PASSWORD, admin=admin)
        accounts.set_policy(user.account, force=listed)
    expected = sum(policy.must_bind(user) for user in User.select())
    assert reports.adoption().binding_pending == expected == {"off": 2, "listed": 3, "all": 4}[mode]


# --- 统计报表: daily summaries, the 30-day tables, charts ---


def event_at(at, event: str, method: str = "", outcome: str = "ok", user=None) -> None:
    """An audit row written at ``at`` (as an older release or the demo data would have it)."""
    AuditEvent.create(
        created_at=at, user=user, account=user.account if user else "", event=event, method=method, outcome=outcome
    )


def login_session(user) -> LoginSession:
    return sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, Client()))


def day_row(table, day) -> list:
    return dict(table.rows)[day.isoformat()]


def test_audit_record_counts_each_event_in_the_daily_summary(user):
    audit.record("login_complete", user=user, method="totp")
    audit.record("login_complete", user=user, method="totp")
    audit.record("login_password", user=user, outcome="fail")
    today = report_summary.local_day(utcnow())
    totals = {(r.event, r.method, r.outcome): r.total for r in AuditDaily.select().where(AuditDaily.day == today)}
    assert totals == {
        ("login_complete", "totp", "ok"): 2,
        ("login_password", "", "fail"): 1,
        ("user_created", "", "ok"): 1,
    }


def test_an_event_rolled_back_is_not_counted(user):
    with pytest.raises(RuntimeError), db.atomic():
        audit.record("login_complete", user=user, method="totp")
        raise RuntimeError
    logins = (AuditDaily.event == "login_complete", AuditEvent.event == "login_complete")
    assert AuditDaily.select().where(logins[0]).count() == 0 and AuditEvent.select().where(logins[1]).count() == 0


def test_days_are_beijing_days():
    # 2026-12-01 16:30 UTC is 2026-12-02 00:30 in Beijing; 15:59 UTC is still the 1st there.
    assert report_summary.local_day(datetime(2026, 12, 1, 16, 30)) == date(2026, 12, 2)
    assert report_summary.local_day(datetime(2026, 12, 1, 15, 59)) == date(2026, 12, 1)
    assert report_summary.day_start(date(2026, 12, 2)) == datetime(2026, 12, 1, 16, 0)


def test_login_table_counts_results_per_day_from_a_rebuilt_summary(user):
    now = utcnow()
    yesterday = now - timedelta(days=1)
    for at, event, outcome, times in (
        (now, "login_complete", "ok", 3),
        (now, "login_password", "fail", 2),
        (now, "login_verify", "fail", 1),
        (now, "locked_out", "locked", 1),
        (yesterday, "login_complete", "ok", 4),
        (now - timedelta(days=40), "login_complete", "ok", 5),  # beyond the 30 days
    ):
        for _ in range(times):
            event_at(at, event, outcome=outcome, user=user)
    report_summary.rebuild()
    table = report_tables.all_tables(now)["logins"]
    assert [str(c) for c in table.columns] == ["成功", "密码错误", "验证码错误", "锁定"]
    assert len(table.rows) == 30
    assert day_row(table, report_summary.local_day(now)) == [3, 2, 1, 1]
    assert day_row(table, report_summary.local_day(yesterday)) == [4, 0, 0, 0]
    assert sum(values[0] for _, values in table.rows) == 7


def test_rebuild_replaces_counts_but_keeps_expired_tickets(user):
    now = utcnow()
    report_summary.count("login_complete", "", "ok", now, by=9)  # wrong: no audit row says so
    report_summary.count(report_summary.EXPIRED_TICKET, "app", "expired", now, by=2)
    event_at(now, "login_complete", user=user)
    report_summary.rebuild()
    totals = {(r.event, r.total) for r in AuditDaily.select()}
    assert totals == {("login_complete", 1), ("user_created", 1), (report_summary.EXPIRED_TICKET, 2)}


def test_second_steps_by_method_in_chinese(user):
    now = utcnow()
    for method in ("totp", "totp", "wechat", "recovery", ""):
        report_summary.count("login_complete", method, "ok", now)
    table = report_tables.all_tables(now)["second_steps"]
    row = dict(zip(map(str, table.columns), day_row(table, report_summary.local_day(now)), strict=True))
    assert row == {"微信": 1, "第三方 OTP": 2, "备用码": 1, "免二次验证(信任设备等)": 1}


def test_approvals_count_approved_not_me_denied_and_expired(user):
    now = utcnow()
    report_summary.count("app_login_approved", "app", "ok", now, by=3)
    report_summary.count("wechat_login_approved", "wechat", "ok", now)
    report_summary.count("app_login_denied", "app", "not_me", now, by=2)
    report_summary.count("wechat_login_denied", "wechat", "denied", now)
    report_summary.count("app_bind_approved", "app", "ok", now)  # not a login
    report_summary.count(report_summary.EXPIRED_TICKET, "app", "expired", now)  # counted by prune
    stale = tickets.create(login_session(user), user, "wechat", "login", Client()).ticket
    Ticket.update(expires_at=now - timedelta(minutes=1)).where(Ticket.id == stale.id).execute()
    tickets.create(login_session(user), user, "wechat", "login", Client())  # still open: not expired
    table = report_tables.all_tables(now)["approvals"]
    assert [str(c) for c in table.columns] == ["已批准", "不是本人操作", "其他拒绝", "已过期"]
    assert day_row(table, report_summary.local_day(now)) == [4, 2, 1, 2]


def test_prune_counts_expired_login_tickets_as_their_sessions_go(user):
    client = Client()
    ticket = tickets.create(login_session(user), user, "app", "login", client).ticket
    decided = tickets.create(login_session(user), user, "app", "login", client).ticket
    tickets.decide(decided, "device", approve=True)
    long_ago = utcnow() - timedelta(days=3)
    Ticket.update(expires_at=long_ago, created_at=long_ago).execute()
    LoginSession.update(expires_at=long_ago).execute()
    before = report_tables.all_tables()["approvals"]
    day = report_summary.local_day(long_ago)
    assert day_row(before, day)[3] == 1  # still in the tickets table: counted live
    counts = housekeeping.prune(audit_days=30)
    assert counts["expired login tickets (counted in the reports)"] == 1
    assert Ticket.select().where(Ticket.id == ticket.id).count() == 0
    assert day_row(report_tables.all_tables()["approvals"], day)[3] == 1  # now from the summary, once


def test_prune_of_old_audit_rows_keeps_the_summaries(user):
    old = utcnow() - timedelta(days=45)
    event_at(old, "login_complete", user=user)
    report_summary.rebuild()
    housekeeping.prune(audit_days=30)
    assert AuditEvent.select().where(AuditEvent.event == "login_complete").count() == 0
    assert AuditDaily.get(AuditDaily.event == "login_complete").total == 1


def test_adoption_trend_from_snapshots(user, totp_secret):
    now = utcnow()
    today = report_summary.local_day(now)
    AdoptionDaily.delete().execute()  # the migration's backfill (of an empty database)
    report_summary.save_adoption({today - timedelta(days=2): {"": 5, "totp": 4, "wechat": 1}})
    table = report_tables.all_tables(now)["adoption_trend"]  # takes today's snapshot: alice, TOTP
    columns = list(map(str, table.columns))
    assert columns[:3] == ["任一方式", "邮箱安全 App", "第三方 OTP"]
    today_row = dict(zip(columns, day_row(table, today), strict=True))
    assert (today_row["任一方式"], today_row["第三方 OTP"], today_row["微信"]) == (1, 1, 0)
    earlier = dict(zip(columns, day_row(table, today - timedelta(days=2)), strict=True))
    assert (earlier["任一方式"], earlier["第三方 OTP"], earlier["微信"]) == (5, 4, 1)
    assert set(day_row(table, today - timedelta(days=1))) == {None}  # no snapshot that day


def test_backfill_adoption_follows_binding_dates(user, totp_secret):
    now = utcnow()
    Factor.update(created_at=now - timedelta(days=10)).execute()
    report_summary.backfill_adoption(30, now)
    rows = {(r.day, r.method): r.accounts for r in AdoptionDaily.select()}
    today = report_summary.local_day(now)
    assert rows[(today, "")] == 1 and rows[(today, "totp")] == 1
    assert rows[(today - timedelta(days=12), "")] == 0


def test_charts_are_svg_without_script_or_style():
    svg = str(charts.bars("每日登录", ["12-01", "12-02"], [("成功", [3, 4]), ("<b>x</b>", [1, 0])]))
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert "<script" not in svg and "<style" not in svg and "style=" not in svg
    assert "<title>每日登录</title>" in svg
    assert "<title>12-01 成功: 3</title>" in svg  # the browser's tooltip, no JavaScript
    assert "<title>12-02 &lt;b&gt;x&lt;/b&gt;: 0</title>" not in svg  # no bar for a zero
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg  # labels escaped
    line = str(charts.lines("趋势", ["12-01", "12-02", "12-03"], [("任一方式", [None, 2, 3])]))
    assert "<script" not in line and "<title>12-02 任一方式: 2</title>" in line
    assert 'd="M' in line and line.count("<circle") == 2  # the gap has no dot


def test_bars_stack_to_scale():
    svg = str(charts.bars("x", ["a"], [("s1", [30]), ("s2", [10])]))  # total 40: axis 0..40 by 10
    assert re.findall(r'<text class="y"[^>]*>(\d+)</text>', svg) == ["0", "10", "20", "30", "40"]
    heights = [float(h) for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)">', svg)]
    assert heights[0] == pytest.approx(3 * heights[1])  # 30 is three times 10
    assert charts._scale(0) == (4, [0, 1, 2, 3, 4]) and charts._scale(7)[0] == 8


def test_activity_counts_rolling_windows_from_the_log_edge_and_the_daily_summary(user):
    now = utcnow()

    def wrong_password(at):  # what audit.record writes at that time: the row and its day's count
        event_at(at, "login_password", outcome="fail", user=user)
        report_summary.count("login_password", "", "fail", at)

    week_ago = now - timedelta(days=7)
    for at in (week_ago + timedelta(minutes=30), now - timedelta(days=3), now - timedelta(hours=1)):
        wrong_password(at)
    wrong_password(week_ago - timedelta(minutes=30))  # just outside the week
    event_at(now - timedelta(hours=2), "login_password", outcome="ok", user=user)  # another outcome
    rows = dict(reports.activity(now))
    assert rows[reports.ACTIVITY[1][0]] == [1, 3]
