"""Housekeeping: delete rows that nothing can use any more (run daily: `flask --app wsgi prune`).

Ended or expired login sessions go with everything hanging on them (QR tickets, enrollments,
grants, mailed codes, single sign-on codes and tokens: ON DELETE CASCADE); so do throttle counters
of past windows, expired mini-program tokens and cache entries, old used signatures, single sign-on
codes and tokens a day past their end, trusted devices revoked or expired a while ago, and mail-client
login counts and seen devices / places older than 90 days (登录记录, new-sign-in notices).
The audit log is kept unless an age is given; the 统计报表's daily summaries are always kept (login tickets
that expired undecided are counted into them as they go, and today's adoption snapshot is taken).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from portal.db import db
from portal.models import (
    ApiToken,
    AuditEvent,
    CacheEntry,
    LoginSession,
    MailLoginCount,
    OAuthCode,
    OAuthToken,
    SeenSignIn,
    ThrottleCounter,
    TrustedDevice,
    utcnow,
)
from portal.services import app_devices, report_summary

GRACE = timedelta(days=1)  # a dead session stays a day (its page may still poll and be told so)
TRUSTED_DEVICE_HISTORY = timedelta(days=30)  # revoked or expired devices stay listed for support
ACTIVITY_DAYS = timedelta(days=90)  # 登录记录 shows 90 days; new device / new place look back as far


def prune(now: datetime | None = None, audit_days: int | None = None) -> dict[str, int]:
    """Delete what has expired; returns how many rows of each kind went."""
    now = now or utcnow()
    dead = now - GRACE
    with db.atomic():  # the expired login tickets are counted as they go with their sessions
        expired = report_summary.expired_login_tickets(dead, now)
        sessions = LoginSession.delete().where((LoginSession.ended_at < dead) | (LoginSession.expires_at < dead))
        ended = sessions.execute()
    report_summary.snapshot_adoption(now)
    counts = {
        "login sessions": ended,
        "expired login tickets (counted in the reports)": expired,
        "throttle counters": ThrottleCounter.delete().where(ThrottleCounter.window_start < dead).execute(),
        "mini-program tokens": ApiToken.delete().where(ApiToken.expires_at < now).execute(),
        "cache entries": CacheEntry.delete().where(CacheEntry.expires_at < now).execute(),
        "single sign-on codes": OAuthCode.delete().where(OAuthCode.expires_at < dead).execute(),
        "single sign-on tokens": OAuthToken.delete()
        .where(
            (OAuthToken.revoked_at < dead)
            | (
                (OAuthToken.expires_at < dead)
                & (OAuthToken.refresh_expires_at.is_null() | (OAuthToken.refresh_expires_at < dead))
            )
        )
        .execute(),
        "App signatures": app_devices.prune_signatures(),
        "trusted devices": TrustedDevice.delete()
        .where(
            (TrustedDevice.revoked_at < now - TRUSTED_DEVICE_HISTORY)
            | (TrustedDevice.expires_at < now - TRUSTED_DEVICE_HISTORY)
        )
        .execute(),
        "mail-client login counts": MailLoginCount.delete()
        .where(MailLoginCount.last_at < now - ACTIVITY_DAYS)
        .execute(),
        "seen devices and places": SeenSignIn.delete().where(SeenSignIn.last_at < now - ACTIVITY_DAYS).execute(),
    }
    if audit_days is not None:
        counts["audit events"] = (
            AuditEvent.delete().where(AuditEvent.created_at < now - timedelta(days=audit_days)).execute()
        )
    return counts
