"""Daily summary rows behind the 统计报表: counts the charts read instead of the audit log.

``AuditDaily`` counts audit events per local day (Asia/Shanghai), event, method and outcome. Each
``audit.record`` adds one with an atomic upsert (``INSERT … ON CONFLICT DO UPDATE SET total = total + 1``)
in the event's own transaction, so parallel writers never lose a count and a rolled-back event is not
counted. The summaries outlive the audit rows: ``prune --audit-days`` deletes old events, never these.
Login tickets that expire undecided leave no event; ``prune`` counts them here (event ``login_ticket``,
outcome ``expired``) just before it deletes them with their session.

``AdoptionDaily`` is a snapshot per day of how many enabled accounts have each method bound (method ""
= any second factor). Today's row is refreshed when the report is shown and by ``prune``; a day keeps
the last value written on it. Older days cannot be recomputed (unbinding leaves no factor row), so the
migration that introduced the table filled the previous 30 days from the factors still bound then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import peewee as pw

from portal.db import db
from portal.models import AdoptionDaily, AuditDaily, AuditEvent, Factor, LoginSession, Ticket, User, utcnow
from portal.timezone import LOCAL

EXPIRED_TICKET = "login_ticket"  # the summary-only event of a login ticket that expired undecided
BATCH = 500
Key = tuple[date, str, str, str]  # day, event, method, outcome


def local_day(value: datetime) -> date:
    """The local (Asia/Shanghai) date of a naive UTC time."""
    return value.replace(tzinfo=UTC).astimezone(LOCAL).date()


def day_start(day: date) -> datetime:
    """The naive UTC time at which a local day begins."""
    return datetime.combine(day, time(), LOCAL).astimezone(UTC).replace(tzinfo=None)


def count(event: str, method: str, outcome: str, at: datetime | None = None, by: int = 1) -> None:
    """Add ``by`` to the day's count of (event, method, outcome), atomically."""
    day = local_day(at or utcnow())
    AuditDaily.insert(day=day, event=event, method=method, outcome=outcome, total=by).on_conflict(
        conflict_target=[AuditDaily.day, AuditDaily.event, AuditDaily.method, AuditDaily.outcome],
        update={AuditDaily.total: AuditDaily.total + pw.EXCLUDED.total},
    ).execute()


def add_counts(counts: Counter[Key]) -> None:
    """Add many (day, event, method, outcome) → n at once (backfill, demo data)."""
    rows = [(day, event, method, outcome, n) for (day, event, method, outcome), n in counts.items() if n]
    fields = [AuditDaily.day, AuditDaily.event, AuditDaily.method, AuditDaily.outcome, AuditDaily.total]
    with db.atomic():
        for start in range(0, len(rows), BATCH):
            AuditDaily.insert_many(rows[start : start + BATCH], fields=fields).on_conflict(
                conflict_target=fields[:4], update={AuditDaily.total: AuditDaily.total + pw.EXCLUDED.total}
            ).execute()


def tally(events: Iterable[tuple[datetime, str, str, str]]) -> Counter[Key]:
    """Count (created_at, event, method, outcome) tuples per local day."""
    counts: Counter[Key] = Counter()
    for created_at, event, method, outcome in events:
        counts[(local_day(created_at), event, method, outcome)] += 1
    return counts


def rebuild() -> int:
    """Recount every day from the audit rows present (keeps expired-ticket counts); returns the rows."""
    fields = (AuditEvent.created_at, AuditEvent.event, AuditEvent.method, AuditEvent.outcome)
    counts = tally(AuditEvent.select(*fields).tuples().iterator())
    with db.atomic():
        AuditDaily.delete().where(AuditDaily.event != EXPIRED_TICKET).execute()
        add_counts(counts)
    return len(counts)


def expired_login_tickets(dead: datetime, now: datetime) -> int:
    """Count into the summary the login tickets that expired undecided and whose session ``prune`` is
    about to delete (ended or expired before ``dead``); call it in prune's transaction."""
    doomed = LoginSession.select(LoginSession.id).where(
        (LoginSession.ended_at < dead) | (LoginSession.expires_at < dead)
    )
    rows = (
        Ticket.select(Ticket.created_at, Ticket.method)
        .where(
            (Ticket.purpose == "login")
            & Ticket.state.in_(("pending", "scanned"))
            & (Ticket.expires_at < now)
            & Ticket.session.in_(doomed)
        )
        .tuples()
    )
    counts = tally((created_at, EXPIRED_TICKET, method, "expired") for created_at, method in rows)
    add_counts(counts)
    return sum(counts.values())


def adoption_now() -> dict[str, int]:
    """Enabled accounts per bound method, and "" → with any second factor."""
    enabled = User.select(User.id).where(~User.disabled)
    counts = dict(
        Factor.select(Factor.method, pw.fn.COUNT(Factor.id))
        .where(Factor.user.in_(enabled))
        .group_by(Factor.method)
        .tuples()
    )
    counts[""] = Factor.select(Factor.user).where(Factor.user.in_(enabled)).distinct().count()
    return counts


def snapshot_adoption(now: datetime | None = None) -> None:
    """Write (or overwrite) today's adoption row per method."""
    day = local_day(now or utcnow())
    save_adoption({day: adoption_now()})


def save_adoption(days: dict[date, dict[str, int]]) -> None:
    rows = [(day, method, accounts) for day, counts in days.items() for method, accounts in counts.items()]
    fields = [AdoptionDaily.day, AdoptionDaily.method, AdoptionDaily.accounts]
    with db.atomic():
        for start in range(0, len(rows), BATCH):
            AdoptionDaily.insert_many(rows[start : start + BATCH], fields=fields).on_conflict(
                conflict_target=fields[:2], update={AdoptionDaily.accounts: pw.EXCLUDED.accounts}
            ).execute()


def backfill_adoption(days: int = 30, now: datetime | None = None) -> None:
    """The last ``days`` days from the factors bound now, by when they were bound (unbound ones are gone)."""
    today = local_day(now or utcnow())
    enabled = User.select(User.id).where(~User.disabled)
    bound = list(Factor.select(Factor.user, Factor.method, Factor.created_at).where(Factor.user.in_(enabled)).tuples())
    history: dict[date, dict[str, int]] = {}
    for back in range(days, -1, -1):
        day = today - timedelta(days=back)
        end = day_start(day + timedelta(days=1))
        present = [(user, method) for user, method, created_at in bound if created_at < end]
        counts = Counter(method for _user, method in present)
        counts[""] = len({user for user, _method in present})
        history[day] = dict(counts)
    save_adoption(history)
