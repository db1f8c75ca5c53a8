"""`flask --app wsgi demo-large`: a realistic large database for benchmarks, here on a small N."""

from __future__ import annotations

import pytest

from portal.models import AdoptionDaily, AppPassword, AuditDaily, AuditEvent, Factor, User
from portal.services import demo_large, passwords, report_summary, report_tables
from portal.services.demo import DEMO_PASSWORD
from portal.services.errors import Conflict


@pytest.fixture
def seeded(ctx):
    return demo_large.seed(200, 6000, days=30, say=lambda line: None)


def test_seed_creates_accounts_factors_and_events(seeded):
    assert seeded["accounts"] == 200 == User.select().count()
    assert seeded["factors"] == Factor.select().count() and 130 < seeded["factors"] < 200  # ~78 % protected
    assert seeded["app passwords"] == AppPassword.select().count() > 0
    assert 5500 < seeded["events"] == AuditEvent.select().count() <= 6000  # today's still to come are left out
    user = User.by_account(demo_large.account_name(7))
    assert passwords.verify(user.password_hash, DEMO_PASSWORD)  # one hash, a working password


def test_events_are_the_real_mix_over_thirty_days(seeded):
    def share(**where) -> float:
        query = AuditEvent.select()
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return query.count() / seeded["events"]

    assert 0.15 < share(event="login_complete", outcome="ok") < 0.4
    assert 0.01 < share(event="login_password", outcome="fail") < 0.08
    assert share(event="locked_out", outcome="locked") > 0
    assert share(event="app_login_denied", outcome="not_me") > 0
    assert share(event="mail_login") > 0.05
    days = {report_summary.local_day(at) for (at,) in AuditEvent.select(AuditEvent.created_at).tuples()}
    span = set(report_tables.days())
    assert days <= span and len(days) >= 29  # just after midnight (Beijing) today has no events yet
    ids = [row.id for row in AuditEvent.select(AuditEvent.id, AuditEvent.created_at).order_by(AuditEvent.created_at)]
    assert ids == sorted(ids)  # written in time order, as in production


def test_summaries_match_the_events(seeded):
    counted = sum(r.total for r in AuditDaily.select().where(AuditDaily.event != report_summary.EXPIRED_TICKET))
    assert counted == AuditEvent.select().count()
    tables = report_tables.all_tables()
    logins = sum(values[0] for _, values in tables["logins"].rows)
    assert logins == AuditEvent.select().where(AuditEvent.event == "login_complete").count()
    assert sum(values[3] for _, values in tables["approvals"].rows) > 0  # expired tickets
    assert AdoptionDaily.select().count() > 30  # a snapshot per day and method
    assert all(values[0] is not None for _, values in tables["adoption_trend"].rows)


def test_a_second_run_is_refused(seeded):
    with pytest.raises(Conflict, match="demo-large data exists"):
        demo_large.seed(10, 10, say=lambda line: None)


def test_command_on_a_small_n(app):
    result = app.test_cli_runner().invoke(args=["demo-large", "--users", "30", "--events", "500", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert "accounts: 30" in result.output and "events:" in result.output
    again = app.test_cli_runner().invoke(args=["demo-large", "--users", "30", "--events", "500"])
    assert again.exit_code == 1 and "demo-large data exists" in again.output
    bad = app.test_cli_runner().invoke(args=["demo-large", "--users", "0"])
    assert bad.exit_code == 2
