"""Second factors: overview, code verification, binding (绑定), unbinding (解绑), changing (修改)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask import current_app

from portal import crypto
from portal.db import db, lock_rows
from portal.models import Enrollment, Factor, Grant, LoginSession, Ticket, User, utcnow
from portal.services import audit, mailed_codes, otp, policy, revocation, sessions, step_up, throttle, tickets
from portal.services.client import Client
from portal.services.errors import Conflict, Expired, InvalidCode, NotAllowed, NotFound, SecretUnreadable

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

    A wrong code says how many tries are left once few remain. 备用邮箱 codes are mailed to one
    browser session: only that ``session`` may use them. A factor whose secret cannot be read fails
    closed (503, audited), without counting against the user.
    """
    with throttle.begin("otp", user.account, client.ip) as attempt:
        factor = Factor.of(user, method)
        try:
            _check_code(factor, method, raw_code, session)
        except InvalidCode as exc:
            audit.record(f"{purpose}_verify", user=user, method=method, outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        except SecretUnreadable:
            audit.record(
                f"{purpose}_verify",
                user=user,
                method=method,
                outcome="error",
                client=client,
                detail="secret_unreadable: the data key cannot decrypt this factor",
            )
            raise
        attempt.succeeded()
    audit.record(f"{purpose}_verify", user=user, method=method, client=client)
    return factor


def _check_code(factor: Factor | None, method: str, raw_code: str | None, session: LoginSession | None) -> None:
    code = otp.parse_code(raw_code)
    if factor is None or method not in CODE_METHODS:
        raise InvalidCode("该验证方式未绑定")
    if method == "email":
        if session is None or mailed_codes.consume(session, "verify", code) is None:
            raise InvalidCode("验证码错误或已过期,请重新获取")
        return
    step = otp.matching_step(crypto.decrypt(factor.secret), code)
    if step is None:
        raise InvalidCode("验证码错误,请重新输入")
    if not _claim_step(factor, step):
        raise InvalidCode("该验证码已使用,请等待下一个验证码", code="code_reused")


def _claim_step(factor: Factor, step: int) -> bool:
    """Atomically record ``step`` as used; False if it (or a later one) was used already."""
    return (
        Factor.update(last_used_step=step, last_used_at=utcnow())
        .where((Factor.id == factor.id) & (Factor.last_used_step.is_null() | (Factor.last_used_step < step)))
        .execute()
        == 1
    )


def binding_purpose(session: LoginSession, user: User, method: str) -> str:
    """May this session start binding ``method`` now? "rebind" for the second half of 修改, else "bind".

    The method must be offered and not bound yet (修改 replaces instead); binding another factor
    next to a bound one needs a fresh verification (step-up).
    """
    label = policy.METHODS[method].label
    if method not in policy.offered(user):
        raise NotAllowed(f"{label}需由管理员开通")
    if has_grant(session, f"change:{method}"):
        return "rebind"
    bound = bound_methods(user)
    if method in bound:
        raise Conflict(f"{label}已绑定;如需更换请使用“修改”", code="already_bound")
    if bound:
        step_up.require(session, f"bind-{method}")
    return "bind"


def begin_totp(session: LoginSession, user: User) -> TotpEnrollment:
    """Start binding 第三方 OTP: a fresh secret, kept pending until a code confirms it."""
    purpose = binding_purpose(session, user, "totp")
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
    with throttle.begin("otp", user.account, client.ip) as attempt:
        try:  # a malformed code is a failed attempt too, audited like a wrong one
            step = otp.matching_step(crypto.decrypt(enrollment.secret), otp.parse_code(raw_code))
            if step is None:
                raise InvalidCode("验证码错误,请确认 App 中显示的是本账号的验证码")
        except InvalidCode as exc:
            audit.record("factor_bind", user=user, method="totp", outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        with db.atomic():
            claimed = Enrollment.delete().where((Enrollment.id == enrollment.id) & (Enrollment.expires_at > utcnow()))
            if claimed.execute() != 1:
                raise Expired("绑定已完成或已过期")
            factor = commit_binding(
                session,
                user,
                "totp",
                client,
                replaces=enrollment.purpose == "rebind",
                secret=enrollment.secret,
                last_used_step=step,
                last_used_at=utcnow(),
            )
        attempt.succeeded()
    return factor


def commit_binding(
    session: LoginSession, user: User, method: str, client: Client | None, replaces: bool, detail: str = "", **fields
) -> Factor:
    """Store a newly confirmed factor (inside the caller's transaction); 修改 replaces the old one only now.

    A 修改 spends its grant, and the old factor goes with everything that rested on it (invariant 14);
    the session that bound the factor has just proved it (a fresh verification).
    """
    label = policy.METHODS[method].label
    with db.atomic():
        if replaces:
            if not use_grant(session, f"change:{method}"):
                raise Expired("修改的验证已过期,请在网页上重新操作", code="grant_expired")
            old = Factor.of(user, method)
            Factor.delete().where((Factor.user == user) & (Factor.method == method)).execute()
            # What rested on the old factor goes, unless the new one rests on the same (微信 bound again).
            gone = [old] if old and old.external_id != fields.get("external_id") else []
            revocation.revoke_access(user, f"{method} changed", client, keep=session, removed=gone)
        try:
            with db.atomic():
                factor = Factor.create(user=user, method=method, **fields)
        except peewee.IntegrityError as exc:
            raise Conflict(f"{label}已绑定;如需更换请使用“修改”", code="already_bound") from exc
        sessions.mark_verified(session, method)
        event = "factor_changed" if replaces else "factor_bound"
        audit.record(event, user=user, method=method, client=client, detail=detail or fields.get("label", ""))
    return factor


def commit_scanned_binding(ticket: Ticket, approver: str, client: Client | None, **fields) -> Factor:
    """A phone confirmed a bind QR (微信, 邮箱安全 App): the ticket is decided and the factor stored, together.

    Only a browser past the password (full, or forced to bind) may bind (invariant 7).
    """
    if ticket.session.stage not in (sessions.FULL, sessions.BINDING):
        raise NotAllowed("网页登录未完成", code="session_not_full")
    with db.atomic():
        tickets.decide(ticket, approver, approve=True)
        return commit_binding(ticket.session, ticket.user, ticket.method, client, ticket.replaces, **fields)


def unbind(session: LoginSession, user: User, method: str, via: str, raw_code: str | None, client: Client) -> None:
    """解绑: verified by a code of ``via`` (this factor or another bound one)."""
    check_removable(user, method)
    verify(user, via, raw_code, client, "unbind", session)
    remove(user, method, client, via, session)


LAST_FACTOR = "管理员要求启用二次验证,不能解绑唯一的验证方式;如需更换请使用“修改”"


def check_removable(user: User, method: str) -> None:
    """A bound factor that policy lets this user unbind."""
    _require_bound(user, method)
    if policy.must_bind(user) and len(bound_methods(user)) == 1:
        raise NotAllowed(LAST_FACTOR)


def remove(user: User, method: str, client: Client, via: str, session: LoginSession | None = None) -> None:
    """Delete a factor after its fresh verification, with all that rested on it (invariant 14).

    The delete comes first and the count after it, in one transaction with the account's row
    locked, so that two parallel unbinds cannot leave a forced user with no factor. The user's
    other sessions end; ``session``, the one that asked, stays.
    """
    with db.atomic():
        lock_rows(User.select(User.id).where(User.id == user.id))
        factor = Factor.of(user, method)
        if factor is None or not Factor.delete().where(Factor.id == factor.id).execute():
            raise NotFound("该验证方式未绑定")
        if policy.must_bind(user) and not Factor.select().where(Factor.user == user).exists():
            raise NotAllowed(LAST_FACTOR)  # rolls the delete back
        Enrollment.delete().where((Enrollment.user == user) & (Enrollment.method == method)).execute()
        revocation.revoke_access(user, f"{method} unbound", client, keep=session, removed=[factor])
        audit.record("factor_unbound", user=user, method=method, client=client, detail=f"verified by {via}")


def authorize_change(
    session: LoginSession, user: User, method: str, via: str, raw_code: str | None, client: Client
) -> None:
    """修改, first half: a fresh verification grants one rebind of ``method`` in this session."""
    _require_bound(user, method)
    verify(user, via, raw_code, client, "change", session)
    sessions.mark_verified(session, via)
    grant_change(session, method)


def reverify(session: LoginSession, via: str, raw_code: str | None, client: Client) -> None:
    """Step-up by a code of a bound factor: the session counts as freshly verified."""
    verify(session.user, via, raw_code, client, "step_up", session)
    sessions.mark_verified(session, via)


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
