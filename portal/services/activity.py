"""登录记录: the last 90 days of an account's web logins and refusals, and its mail-client logins.

Web rows come from the audit trail (password step refused, second step refused, login completed by a
factor, a trusted device, a trusted network or after forced binding, locks, single sign-on into an app,
forward auth refusals); mail
rows from the per-client-and-hour counts of ``mail_logins`` (one row however often a client polled).
Newest first, a page at a time: ``page(user, before)`` returns the rows older than ``before`` and the
cursor of the next page (None at the end). Rows are plain values; the view only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import ngettext

from portal.models import AuditEvent, MailLoginCount, User, utcnow
from portal.services import places, useragent

DAYS = 90
PAGE_SIZE = 20
OK, FAIL, LOCKED = "ok", "fail", "locked"
WEB_EVENTS = ("login_password", "login_verify", "login_complete", "locked_out", "forward_auth", "sso_authorized")


@dataclass(frozen=True)
class Row:
    time: datetime  # naive UTC (the template shows Asia/Shanghai)
    ip: str
    place: str
    client: str
    method: str
    result: str  # 成功 / 失败 … in the reader's language
    kind: str  # ok | fail | locked: how the result is marked
    source: str  # web | mail
    count: int = 1
    first_time: datetime | None = None  # mail: the first login of the hour's row


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_before: datetime | None


def page(user: User, before: datetime | None = None, size: int = PAGE_SIZE, now: datetime | None = None) -> Page:
    """Up to ``size`` rows older than ``before`` (newest first) from the last 90 days."""
    since = (now or utcnow()) - timedelta(days=DAYS)
    web = _web_events(user, since, before, size + 1)
    mail = _mail_counts(user, since, before, size + 1)
    rows = sorted([*(_web_row(e) for e in web), *(_mail_row(m) for m in mail)], key=lambda r: r.time, reverse=True)
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].time if more and rows else None)


def parse_cursor(raw: str | None) -> datetime | None:
    """The ``before`` of a 加载更多 link (ISO time); anything else starts from the newest."""
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _web_events(user: User, since: datetime, before: datetime | None, limit: int) -> list[AuditEvent]:
    query = AuditEvent.select().where(
        (AuditEvent.user == user)
        & AuditEvent.event.in_(WEB_EVENTS)
        & (AuditEvent.created_at >= since)
        & ~((AuditEvent.event == "login_password") & (AuditEvent.outcome == OK))  # the login's next step says it
        & ~((AuditEvent.event == "login_verify") & (AuditEvent.outcome == OK))  # login_complete says it
        & ~((AuditEvent.event == "locked_out") & AuditEvent.detail.startswith("mail:"))  # a mail row says it
    )
    if before is not None:
        query = query.where(AuditEvent.created_at < before)
    return list(query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit))


def _mail_counts(user: User, since: datetime, before: datetime | None, limit: int) -> list[MailLoginCount]:
    query = MailLoginCount.select().where((MailLoginCount.user == user) & (MailLoginCount.last_at >= since))
    if before is not None:
        query = query.where(MailLoginCount.last_at < before)
    return list(query.order_by(MailLoginCount.last_at.desc(), MailLoginCount.id.desc()).limit(limit))


def _web_row(event: AuditEvent) -> Row:
    browser, system = useragent.describe(event.user_agent)
    method, result, kind = _web_outcome(event)
    return Row(
        time=event.created_at,
        ip=event.ip,
        place=places.label_of(event.ip),
        client=f"{browser} · {system}",
        method=method,
        result=result,
        kind=kind,
        source="web",
    )


def _web_outcome(event: AuditEvent) -> tuple[str, str, str]:
    """(method, result, kind) of one audit event."""
    if event.event == "login_password":
        reason = _("帐号已停用") if event.detail == "disabled" else _("密码错误")
        return _("密码"), _("失败(%(reason)s)", reason=reason), FAIL
    if event.event == "login_verify":
        return _method_label(event.method), _("失败(验证码错误)"), FAIL
    if event.event == "locked_out":
        step = _("密码") if event.detail.startswith("password:") else _("二次验证")
        return step, _("锁定(尝试次数过多)"), LOCKED
    if event.event == "forward_auth":
        return _("单点登录(转发认证)"), _("拒绝"), FAIL
    if event.event == "sso_authorized":
        return _("单点登录 · %(app)s", app=event.detail), _("成功"), OK
    return _completed_by(event), _("成功"), OK


def _completed_by(event: AuditEvent) -> str:
    """How a login_complete passed the second step."""
    if event.method:
        label = _method_label(event.method)
        if event.detail == "by scan":
            return _("%(method)s 扫码", method=label)
        if event.detail == "by push":
            return _("%(method)s 授权", method=label)
        return label
    return {
        "trusted device": _("信任设备"),
        "trusted_network": _("可信网络"),
        "after forced binding": _("绑定后登录"),
        "binding snoozed": _("稍后绑定"),
    }.get(event.detail, _("密码"))


def _method_label(key: str) -> str:
    from portal.services.factors import METHODS  # the factor modules audit: imported late

    method = METHODS.get(key)
    return str(method.label) if method else key


def _mail_row(row: MailLoginCount) -> Row:
    protocol = row.protocol.upper()
    result, kind = _mail_outcome(row.outcome)
    return Row(
        time=row.last_at,
        ip=row.ip,
        place=places.label_of(row.ip),
        client=_("%(protocol)s 客户端", protocol=protocol) + (f" {row.client}" if row.client else ""),
        method=ngettext("%(protocol)s · %(num)s 次", "%(protocol)s · %(num)s 次", row.count, protocol=protocol),
        result=result,
        kind=kind,
        source="mail",
        count=row.count,
        first_time=row.first_at,
    )


def _mail_outcome(outcome: str) -> tuple[str, str]:
    if outcome == OK:
        return _("成功"), OK
    if outcome == "throttled":
        return _("锁定(尝试次数过多)"), LOCKED
    reasons = {
        "invalid_credentials": _("密码错误"),
        "app_password_required": _("需使用客户端专用密码"),
        "disabled": _("帐号已停用"),
    }
    return _("失败(%(reason)s)", reason=reasons.get(outcome, outcome)), FAIL
