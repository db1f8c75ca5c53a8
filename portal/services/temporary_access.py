"""临时访问码: a one-time code the helpdesk issues to a user who lost the phone (DESIGN §5, Admin).

Issued on the 用户支持 page with a reason (a ticket number) and a lifetime of at most 24 hours; shown
once, only its HMAC is stored, and a new one revokes the unused one before it. While one is active the
second step offers "使用临时访问码": a right code passes it once (a conditional UPDATE, invariant 3),
throttled like every code, and the session goes to the forced-binding stage. That session becomes full
only once a factor was bound or changed in it (not by the lost one merely being bound), and in it the
temporary code counts as the verification that 修改 asks for.

Staff accounts (any console role) never get one: a phone call must not be a way into the console
(their factor is reset by an admin instead).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.db import db
from portal.models import Factor, LoginSession, TemporaryAccessCode, User, utcnow
from portal.services import audit, sessions, throttle
from portal.services.client import Client
from portal.services.errors import InvalidCode, InvalidInput, NotAllowed, NotFound
from portal.services.factors.base import FactorMethod

KEY = "temporary"
LENGTH = 8  # digits, read out on the phone as two groups of four
LIFETIMES = (60, 240, 480, 1440)  # minutes a helpdesk may choose; 1 h by default, never over 24 h
DEFAULT_MINUTES = LIFETIMES[0]
MAX_LIFETIME = timedelta(hours=24)
REASON_MAX = 200
WRONG = _l("临时访问码错误、已使用或已过期")


class TemporaryCode(FactorMethod):
    """How the second step shows "使用临时访问码" (no factor, no row of 二次验证设置)."""

    key = KEY
    label = _l("临时访问码")
    login_hint = _l("输入网络信息化中心告诉您的临时访问码(8 位数字)。验证后请立即绑定新的验证方式。")
    code_label = _l("临时访问码")
    code_inputmode = "numeric"


TEMPORARY = TemporaryCode()


@dataclass
class Issued:
    code: str  # the plaintext, grouped "1234 5678": shown once
    expires_at: datetime


def refusal(user: User) -> str | None:
    """Why ``user`` cannot be given a temporary code, or None."""
    if user.is_staff:
        return _("管理员、服务台和审计员账号不能使用临时访问码")
    if user.disabled:
        return _("账号已停用")
    if not Factor.select().where(Factor.user == user).exists():
        return _("该用户未绑定二次验证,登录无需临时访问码")
    return None


def parse_minutes(raw: str | int | None) -> int:
    """A lifetime from the form: one of LIFETIMES (default 1 h), else InvalidInput."""
    if raw in (None, ""):
        return DEFAULT_MINUTES
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or int(text) not in LIFETIMES:
        raise InvalidInput(_("有效期只能是 1、4、8 或 24 小时"))
    return int(text)


def issue(user: User, by: User, reason: str, minutes: str | int | None, client: Client | None) -> Issued:
    """A new code for ``user`` (the earlier unused one stops working); audited and noticed."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput(_("请填写签发原因(如工单号)"))
    if len(reason) > REASON_MAX:
        raise InvalidInput(_("原因最多 %(n)s 个字", n=REASON_MAX))
    lifetime = timedelta(minutes=parse_minutes(minutes))
    why_not = refusal(user)
    if why_not:
        raise NotAllowed(why_not)
    for _attempt in range(3):  # a code equal to an old one of this user (1 in 10^8): draw again
        code = "".join(secrets.choice("0123456789") for _ in range(LENGTH))
        try:
            with db.atomic():
                expires_at = _store(user, by, reason, code, lifetime, client)
            return Issued(f"{code[:4]} {code[4:]}", expires_at)
        except peewee.IntegrityError:
            continue
    raise InvalidInput(_("签发失败,请重试"))


def _store(user: User, by: User, reason: str, code: str, lifetime: timedelta, client: Client | None) -> datetime:
    now = utcnow()
    _revoke_unused(user, now)
    row = TemporaryAccessCode.create(
        user=user,
        code_hash=_hash(user, code),
        issued_by=by.account,
        reason=reason,
        created_at=now,
        expires_at=now + lifetime,
    )
    minutes = int(lifetime.total_seconds() // 60)
    detail = f"by {by.account}; valid {minutes} min; {reason}"
    audit.record("temporary_code_issued", user=user, method=KEY, client=client, detail=detail)
    return row.expires_at


def active(user: User) -> TemporaryAccessCode | None:
    """The user's code that still works (unused, not revoked, not expired), or None."""
    return TemporaryAccessCode.select().where(_usable(user)).order_by(TemporaryAccessCode.id.desc()).first()


def offered(user: User) -> bool:
    """Whether the second step offers 使用临时访问码 to ``user``."""
    return not user.is_staff and active(user) is not None


def revoke(user: User, by: User, client: Client | None) -> None:
    """作废 the active code (NotFound if there is none); audited."""
    with db.atomic():
        if not _revoke_unused(user, utcnow()):
            raise NotFound(_("该用户没有有效的临时访问码"))
        audit.record("temporary_code_revoked", user=user, method=KEY, client=client, detail=f"by {by.account}")


def _revoke_unused(user: User, now: datetime) -> int:
    query = TemporaryAccessCode.update(revoked_at=now)
    return query.where((TemporaryAccessCode.user == user) & _unspent()).execute()


def normalise(raw: str | None) -> str | None:
    """Exactly 8 ASCII digits once ASCII spaces and hyphens are removed; None for anything else."""
    code = (raw or "").replace(" ", "").replace("-", "")
    return code if len(code) == LENGTH and code.isascii() and code.isdigit() else None


def consume(user: User, raw: str | None) -> bool:
    """Spend the user's code if ``raw`` is it and it still works: one conditional UPDATE, so that of
    parallel attempts with the same code exactly one wins."""
    code = normalise(raw)
    if code is None or user.is_staff:
        return False
    query = TemporaryAccessCode.update(used_at=utcnow())
    return query.where(_usable(user) & (TemporaryAccessCode.code_hash == _hash(user, code))).execute() == 1


def sign_in(session: LoginSession, raw_code: str | None, client: Client) -> str:
    """The second step by a temporary code: the session moves to forced binding (new id); throttled."""
    user = session.user
    with throttle.begin("otp", user.account, client.ip, user_agent=client.user_agent) as attempt:
        try:
            with db.atomic():  # the code is spent only together with the session's step
                if not consume(user, raw_code):
                    raise InvalidCode(str(WRONG))
                token = sessions.advance(session, sessions.SECOND_FACTOR, sessions.BINDING, KEY)
                audit.record("login_verify", user=user, method=KEY, client=client)
                audit.record("temporary_code_used", user=user, method=KEY, client=client)
        except InvalidCode as exc:
            audit.record("login_verify", user=user, method=KEY, outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        attempt.succeeded()
    return token


def in_session(session: LoginSession | None) -> bool:
    """Whether ``session`` passed the second step by a temporary code and has bound nothing since."""
    return bool(session) and session.stage == sessions.BINDING and session.second_step == KEY


def awaiting_new_factor(session: LoginSession) -> bool:
    """Like ``in_session``, read from the database (another request may have bound a factor)."""
    row = LoginSession.select(LoginSession.stage, LoginSession.second_step).where(LoginSession.id == session.id).first()
    return row is not None and in_session(row)


def authorize_change(session: LoginSession, user: User, method: str, client: Client) -> None:
    """修改 the lost factor in a temporary-code session: the code was the verification it asks for."""
    from portal.services import factors  # factors verify through login, which imports this module

    if not awaiting_new_factor(session):
        raise NotAllowed(_("仅在使用临时访问码登录后,可以不经原验证方式修改"))
    if method not in factors.bound_methods(user):
        raise NotFound(_("该验证方式未绑定"))
    factors.grant_change(session, method)
    audit.record("change_verify", user=user, method=KEY, client=client, detail=f"change {method}")


def _unspent():
    return TemporaryAccessCode.used_at.is_null() & TemporaryAccessCode.revoked_at.is_null()


def _usable(user: User):
    return (TemporaryAccessCode.user == user) & _unspent() & (TemporaryAccessCode.expires_at > utcnow())


def _hash(user: User, code: str) -> str:
    return crypto.token_hash(f"temporary:{user.id}:{code}")
