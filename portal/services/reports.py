"""Admin reports: adoption of second factors, login activity, failures and lockouts (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from flask_babel import lazy_gettext as _l

from portal.models import AppPassword, AuditDaily, AuditEvent, Factor, ThrottleCounter, User, utcnow
from portal.services import factors, policy, report_summary, throttle
from portal.services.app_passwords import USE_RECORD_INTERVAL

USE_RECORD_MINUTES = int(USE_RECORD_INTERVAL.total_seconds() // 60)
# What the activity table counts: (label, event, outcome); event None means any event.
ACTIVITY = (
    (_l("网页登录成功"), "login_complete", "ok"),
    (_l("密码错误"), "login_password", "fail"),
    (_l("验证码错误"), "login_verify", "fail"),
    # A busy client's app-password logins are audited once per interval from the same protocol and IP.
    (
        _l("邮件客户端登录成功(同一客户端 %(minutes)s 分钟内只计一次)", minutes=USE_RECORD_MINUTES),
        "mail_login",
        "ok",
    ),
    (_l("邮件客户端登录失败"), "mail_login", "fail"),
    (_l("标记为“不是本人操作”"), None, "not_me"),
    (_l("账号或 IP 被锁定"), "locked_out", "locked"),
)
# The activity table's columns: (heading, span).
PERIODS = ((_l("最近 24 小时"), timedelta(hours=24)), (_l("最近 7 天"), timedelta(days=7)))
# Throttle scopes whose failures lock an account, as the support desk names them.
LOCK_SCOPES = {"password": _l("密码"), "otp": _l("验证码"), "mail": _l("邮件客户端")}


@dataclass
class Adoption:
    users: int  # enabled accounts
    protected: int  # with at least one second factor
    by_method: dict[str, int]  # method label → accounts that bound it
    with_app_passwords: int
    binding_pending: int  # forced to bind, nothing bound yet
    counts: dict[str, int]  # method key → accounts; "" → protected (report_summary's adoption snapshot)

    @property
    def percent(self) -> int:
        return round(100 * self.protected / self.users) if self.users else 0


@dataclass
class Lockout:
    scope: str  # e.g. password:acct, mail:ip
    key: str  # the account or the IP
    failures: int
    until: datetime

    @property
    def label(self) -> str:
        """The scope as the console names it, e.g. 密码(账号)."""
        kind, _, of = self.scope.partition(":")
        return f"{LOCK_SCOPES.get(kind, kind)}({_l('账号') if of == 'acct' else 'IP'})"


def adoption() -> Adoption:
    # All rows counted from indexes, minus those of the few disabled accounts: no join over 50,000 accounts.
    enabled = User.disabled == False  # noqa: E712 -- a comparison an index can serve (NOT disabled is not)
    counts = _minus_disabled(Factor.select(Factor.method, pw.fn.COUNT(pw.SQL("*"))).group_by(Factor.method))
    protected = _accounts(Factor) - _accounts(Factor, disabled=True)
    unprotected = ~pw.fn.EXISTS(Factor.select(Factor.id).where(Factor.user == User.id))
    pending = User.select().where(policy.must_bind_condition() & enabled & unprotected)
    return Adoption(
        users=User.select().where(enabled).count(),
        protected=protected,
        by_method={m.label: counts.get(key, 0) for key, m in factors.METHODS.items()},
        with_app_passwords=_accounts(AppPassword) - _accounts(AppPassword, disabled=True),
        binding_pending=pending.count(),
        counts={**counts, "": protected},
    )


def _minus_disabled(per_method: pw.Select) -> dict[str, int]:
    every = dict(per_method.tuples())
    off = dict(per_method.join(User).where(User.disabled == True).tuples())  # noqa: E712
    return {method: n - off.get(method, 0) for method, n in every.items()}


def _accounts(model, disabled: bool = False) -> int:
    """Distinct accounts with a row in ``model`` (all, or only the disabled ones)."""
    query = model.select(pw.fn.COUNT(model.user.distinct()))
    if disabled:
        query = query.join(User).where(User.disabled == True)  # noqa: E712
    return query.scalar() or 0


def activity(now: datetime | None = None) -> list[tuple[str, list[int]]]:
    """Each ACTIVITY row with its count in each of PERIODS (a rolling window ending now).

    A window longer than a day reads the whole local days inside it from the daily summary and only its
    first, partial day from the audit log: at two million events 7 days of raw rows cost a COUNT of
    hundreds of thousands per row, the summary a few dozen rows."""
    now = now or utcnow()
    rows = []
    for label, event, outcome in ACTIVITY:
        query = AuditEvent.select().where(AuditEvent.outcome == outcome)
        if event:
            query = query.where(AuditEvent.event == event)
        rows.append((label, [_count_since(query, event, outcome, now - span) for _, span in PERIODS]))
    return rows


def _count_since(query, event: str | None, outcome: str, since: datetime) -> int:
    """Events of ``query`` since ``since``: the log up to the next local midnight, the summary after it."""
    first_whole_day = report_summary.local_day(since) + timedelta(days=1)
    boundary = report_summary.day_start(first_whole_day)
    raw = query.where((AuditEvent.created_at >= since) & (AuditEvent.created_at < boundary)).count()
    summary = AuditDaily.select(pw.fn.COALESCE(pw.fn.SUM(AuditDaily.total), 0)).where(
        (AuditDaily.day >= first_whole_day) & (AuditDaily.outcome == outcome)
    )
    if event:
        summary = summary.where(AuditDaily.event == event)
    return raw + int(summary.scalar() or 0)


def lockouts(now: datetime | None = None) -> list[Lockout]:
    """Counters at their limit in the current window: who cannot log in now, and until when."""
    now = now or utcnow()
    window, retry_after = throttle.current_window(now)
    limits = dict(zip(("acct", "ip"), throttle.failure_limits(), strict=True))
    rows = ThrottleCounter.select().where(ThrottleCounter.window_start == window).order_by(ThrottleCounter.key)
    until = now + timedelta(seconds=retry_after)
    return [
        Lockout(row.scope, row.key, row.failures, until)
        for row in rows
        if row.scope.split(":")[0] in LOCK_SCOPES  # caps (App pushes, mailed codes) lock nobody
        and row.failures >= int(limits[row.scope.rsplit(":", 1)[-1]])
    ]


def recent_failures(limit: int = 20) -> list[AuditEvent]:
    """The newest refused logins and codes (any outcome but ok), for the support desk."""
    return list(AuditEvent.select().where(AuditEvent.outcome != "ok").order_by(AuditEvent.id.desc()).limit(limit))
