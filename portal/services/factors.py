"""Second factors: overview, code verification, binding (绑定), unbinding (解绑), changing (修改)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask import current_app

from portal import crypto
from portal.db import db, lock_rows
from portal.models import Enrollment, Factor, Grant, LoginSession, User, utcnow
from portal.services import audit, mailed_codes, otp, policy, throttle, trust
from portal.services.client import Client
from portal.services.errors import Conflict, Expired, InvalidCode, NotAllowed, NotFound

ENROLLMENT_TTL = timedelta(minutes=10)
GRANT_TTL = timedelta(minutes=10)
CODE_METHODS = ("totp", "wechat", "app", "email")  # methods whose 6-digit codes this release verifies


@dataclass
class MethodRow:
    """One row of 二次验证设置."""

    method: policy.Method
    factor: Factor | None
    offered: bool


@dataclass
class TotpEnrollment:
    id: int
    secret: str
    uri: str
    purpose: str


def overview(user: User) -> list[MethodRow]:
    bound = {f.method: f for f in Factor.of_user(user.id)}
    offered = policy.offered(user)
    return [MethodRow(m, bound.get(key), key in offered) for key, m in policy.METHODS.items()]


def bound_methods(user: User) -> list[str]:
    return [f.method for f in Factor.of_user(user.id)]


def verify(
    user: User, method: str, raw_code: str | None, client: Client, purpose: str, session: LoginSession | None = None
) -> Factor:
    """Check a 6-digit code of one bound factor: throttled, strict, used at most once.

    备用邮箱 codes are mailed to one browser session: only that ``session`` may use them.
    """
    attempt = throttle.begin("otp", user.account, client.ip)
    factor = Factor.get_or_none((Factor.user == user) & (Factor.method == method))
    try:
        code = otp.parse_code(raw_code)
        if factor is None or method not in CODE_METHODS:
            raise InvalidCode("该验证方式未绑定")
        if method == "email":
            if session is None or mailed_codes.consume(session, "verify", code) is None:
                raise InvalidCode("验证码错误或已过期,请重新获取")
        else:
            step = otp.matching_step(crypto.decrypt(factor.secret), code)
            if step is None:
                raise InvalidCode("验证码错误,请重新输入")
            if not _claim_step(factor, step):
                raise InvalidCode("该验证码已使用,请等待下一个验证码", code="code_reused")
    except InvalidCode as exc:
        audit.record(f"{purpose}_verify", user=user, method=method, outcome="fail", client=client, detail=exc.code)
        raise
    attempt.succeeded()
    audit.record(f"{purpose}_verify", user=user, method=method, client=client)
    return factor


def _claim_step(factor: Factor, step: int) -> bool:
    """Atomically record ``step`` as used; False if it (or a later one) was used already."""
    return (
        Factor.update(last_used_step=step, last_used_at=utcnow())
        .where((Factor.id == factor.id) & (Factor.last_used_step.is_null() | (Factor.last_used_step < step)))
        .execute()
        == 1
    )


def begin_totp(session: LoginSession, user: User) -> TotpEnrollment:
    """Start binding 第三方 OTP: a fresh secret, kept pending until a code confirms it."""
    if "totp" not in policy.offered(user):
        raise NotAllowed("第三方 OTP 需由管理员开通")
    purpose = "rebind" if has_grant(session, "change:totp") else "bind"
    if purpose == "bind" and "totp" in bound_methods(user):
        raise Conflict("第三方 OTP 已绑定;如需更换请使用“修改”")
    secret = otp.new_secret()
    with db.atomic():
        Enrollment.delete().where((Enrollment.session == session) & (Enrollment.method == "totp")).execute()
        row = Enrollment.create(
            user=user,
            session=session,
            method="totp",
            purpose=purpose,
            secret=crypto.encrypt(secret),
            expires_at=utcnow() + ENROLLMENT_TTL,
        )
    return TotpEnrollment(row.id, secret, otp.provisioning_uri(secret, user.account, _issuer()), purpose)


def confirm_totp(session: LoginSession, user: User, enrollment_id: int, raw_code: str | None, client: Client) -> Factor:
    """Finish binding: the code must match the pending secret; 修改 replaces the old factor only now."""
    enrollment = Enrollment.get_or_none(
        (Enrollment.id == enrollment_id) & (Enrollment.session == session) & (Enrollment.method == "totp")
    )
    if enrollment is None or enrollment.expires_at <= utcnow():
        raise Expired("绑定已过期,请重新开始绑定")
    attempt = throttle.begin("otp", user.account, client.ip)
    try:  # a malformed code is a failed attempt too, audited like a wrong one
        step = otp.matching_step(crypto.decrypt(enrollment.secret), otp.parse_code(raw_code))
        if step is None:
            raise InvalidCode("验证码错误,请确认 App 中显示的是本账号的验证码")
    except InvalidCode as exc:
        audit.record("factor_bind", user=user, method="totp", outcome="fail", client=client, detail=exc.code)
        raise
    try:
        with db.atomic():
            factor = _replace_with(enrollment, session, step)
    except peewee.IntegrityError as exc:
        raise Conflict("第三方 OTP 已绑定") from exc
    attempt.succeeded()
    event = "factor_changed" if enrollment.purpose == "rebind" else "factor_bound"
    audit.record(event, user=user, method="totp", client=client)
    return factor


def _replace_with(enrollment: Enrollment, session: LoginSession, step: int) -> Factor:
    """Inside a transaction: consume the enrollment (and the 修改 grant), then store the factor."""
    if Enrollment.delete().where((Enrollment.id == enrollment.id) & (Enrollment.expires_at > utcnow())).execute() != 1:
        raise Expired("绑定已完成或已过期")
    if enrollment.purpose == "rebind":
        if not use_grant(session, f"change:{enrollment.method}"):
            raise Expired("修改的验证已过期,请重新验证")
        Factor.delete().where((Factor.user == enrollment.user_id) & (Factor.method == enrollment.method)).execute()
        trust.revoke_all(enrollment.user, f"{enrollment.method} changed")
    return Factor.create(
        user=enrollment.user_id,
        method=enrollment.method,
        secret=enrollment.secret,
        last_used_step=step,
        last_used_at=utcnow(),
    )


def unbind(session: LoginSession, user: User, method: str, via: str, raw_code: str | None, client: Client) -> None:
    """解绑: verified by a code of ``via`` (this factor or another bound one)."""
    check_removable(user, method)
    verify(user, via, raw_code, client, "unbind", session)
    remove(user, method, client, via)


LAST_FACTOR = "管理员要求启用二次验证,不能解绑唯一的验证方式;如需更换请使用“修改”"


def check_removable(user: User, method: str) -> None:
    """A bound factor that policy lets this user unbind."""
    _require_bound(user, method)
    if policy.must_bind(user) and len(bound_methods(user)) == 1:
        raise NotAllowed(LAST_FACTOR)


def remove(user: User, method: str, client: Client, via: str) -> None:
    """Delete a factor after its fresh verification; trusted devices go with it.

    The delete comes first and the count after it, in one transaction with the account's row
    locked, so that two parallel unbinds cannot leave a forced user with no factor.
    """
    with db.atomic():
        lock_rows(User.select(User.id).where(User.id == user.id))
        if not Factor.delete().where((Factor.user == user) & (Factor.method == method)).execute():
            raise NotFound("该验证方式未绑定")
        if policy.must_bind(user) and not Factor.select().where(Factor.user == user).exists():
            raise NotAllowed(LAST_FACTOR)  # rolls the delete back
        Enrollment.delete().where((Enrollment.user == user) & (Enrollment.method == method)).execute()
        trust.revoke_all(user, f"{method} unbound", client)
        audit.record("factor_unbound", user=user, method=method, client=client, detail=f"verified by {via}")


def authorize_change(
    session: LoginSession, user: User, method: str, via: str, raw_code: str | None, client: Client
) -> None:
    """修改, first half: a fresh verification grants one rebind of ``method`` in this session."""
    _require_bound(user, method)
    verify(user, via, raw_code, client, "change", session)
    grant_change(session, method)


def grant_change(session: LoginSession, method: str) -> None:
    Grant.create(session=session, purpose=f"change:{method}", expires_at=utcnow() + GRANT_TTL)


def _require_bound(user: User, method: str) -> None:
    if method not in bound_methods(user):
        raise NotFound("该验证方式未绑定")


def has_grant(session: LoginSession, purpose: str) -> bool:
    return Grant.select().where(_live_grant(session, purpose)).exists()


def use_grant(session: LoginSession, purpose: str) -> bool:
    """Spend one live grant atomically; False if there is none."""
    grant = Grant.select(Grant.id).where(_live_grant(session, purpose)).order_by(Grant.id).first()
    if grant is None:
        return False
    return Grant.update(used_at=utcnow()).where((Grant.id == grant.id) & Grant.used_at.is_null()).execute() == 1


def _live_grant(session: LoginSession, purpose: str):
    return (
        (Grant.session == session)
        & (Grant.purpose == purpose)
        & Grant.used_at.is_null()
        & (Grant.expires_at > utcnow())
    )


def pending_totp(session: LoginSession, enrollment_id: int) -> TotpEnrollment | None:
    """A live enrollment of this session, to show its QR again after a wrong code."""
    row = Enrollment.get_or_none(
        (Enrollment.id == enrollment_id) & (Enrollment.session == session) & (Enrollment.expires_at > utcnow())
    )
    if row is None:
        return None
    secret = crypto.decrypt(row.secret)
    return TotpEnrollment(row.id, secret, otp.provisioning_uri(secret, row.user.account, _issuer()), row.purpose)


def _issuer() -> str:
    return str(current_app.config["ORG_NAME"])
