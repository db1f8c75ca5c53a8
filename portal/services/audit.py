"""Audit trail: one row per security-relevant event."""

from __future__ import annotations

from datetime import timedelta

from portal import metrics
from portal.db import db
from portal.models import AuditEvent, User, utcnow
from portal.services import notices, report_summary
from portal.services.client import Client


def record(
    event: str,
    *,
    user: User | None = None,
    account: str = "",
    method: str = "",
    outcome: str = "ok",
    client: Client | None = None,
    detail: str = "",
) -> None:
    """Write one audit event (who, what, method, outcome, IP, user agent, time)."""
    client = client or Client()
    with db.atomic():  # the event, its daily count and its notice stand or fall together
        row = AuditEvent.create(
            user=user,
            account=(user.account if user else account)[:254],
            event=event,
            method=method[:16],  # user-supplied (e.g. the login form's method field): must fit the column
            outcome=outcome,
            ip=client.ip,
            user_agent=client.user_agent,
            detail=detail[:2000],
        )
        report_summary.count(event, row.method, outcome, row.created_at)  # the 统计报表's daily count
        notices.enqueue(row)  # in the same transaction, if one is open
    metrics.audit_event(event, outcome)


def recent(limit: int = 50, account: str | None = None, outcome: str | None = None) -> list[AuditEvent]:
    """The newest events, optionally of one account and/or one outcome (e.g. not_me, fail)."""
    query = AuditEvent.select().order_by(AuditEvent.id.desc()).limit(limit)
    if account:
        query = query.where(AuditEvent.account == account.strip().lower())
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    return list(query)


def recent_not_me(user: User, days: int = 7) -> int:
    """How often this user answered "不是本人操作" lately: someone else knows the password."""
    since = utcnow() - timedelta(days=days)
    return (
        AuditEvent.select()
        .where((AuditEvent.user == user) & (AuditEvent.outcome == "not_me") & (AuditEvent.created_at >= since))
        .count()
    )
