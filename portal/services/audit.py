"""Audit trail: one row per security-relevant event."""

from __future__ import annotations

from portal.models import AuditEvent, User
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
    AuditEvent.create(
        user=user,
        account=(user.account if user else account)[:254],
        event=event,
        method=method[:16],  # user-supplied (e.g. the login form's method field): must fit the column
        outcome=outcome,
        ip=client.ip,
        user_agent=client.user_agent,
        detail=detail[:2000],
    )


def recent(limit: int = 50, account: str | None = None) -> list[AuditEvent]:
    query = AuditEvent.select().order_by(AuditEvent.id.desc()).limit(limit)
    if account:
        query = query.where(AuditEvent.account == account)
    return list(query)
