"""What all methods share: the overview, verification, binding (绑定), unbinding (解绑), changing (修改).

Nothing here tests a method's key: what differs between methods is asked of its ``FactorMethod``
(``factors.METHODS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.db import db, lock_rows
from portal.models import Enrollment, Factor, Grant, LoginSession, Ticket, User, utcnow
from portal.services import audit, factors, policy, revocation, sessions, step_up, throttle, tickets
from portal.services.client import Client
from portal.services.errors import Conflict, Expired, InvalidCode, NotAllowed, NotFound, SecretUnreadable
from portal.services.factors import recovery
from portal.services.factors.base import ALREADY_BOUND, GRANT_EXPIRED, SESSION_NOT_FULL, FactorMethod

GRANT_TTL = timedelta(minutes=10)
NOT_BOUND_MESSAGE = _l("该验证方式未绑定")


@dataclass
class MethodRow:
    """One row of 二次验证设置."""

    method: FactorMethod
    factor: Factor | None
    offered: bool  # allowed by policy
    unavailable: str | None  # why this deployment cannot offer it anyway


def overview(user: User) -> list[MethodRow]:
    bound = {f.method: f for f in Factor.of_user(user.id)}
    allowed = _allowed(user)
    return [MethodRow(m, bound.get(key), key in allowed, m.unavailable()) for key, m in factors.METHODS.items()]


def offered(user: User) -> set[str]:
    """Methods this user may bind now: allowed by policy and workable on this deployment."""
    return {key for key in _allowed(user) if key in factors.METHODS and factors.METHODS[key].unavailable() is None}


def _allowed(user: User) -> set[str]:
    """Self-service methods and those enabled globally or for this user. Admins must bind (see
    ``policy.must_bind``), so 第三方 OTP is always allowed them."""
    allowed = {m.key for m in factors.METHODS.values() if m.self_service}
    allowed |= set(policy.parse_methods(policy.get("enabled_methods")))
    allowed |= set(policy.parse_methods(user.extra_methods))
    allowed |= {m.key for m in factors.METHODS.values() if m.assigned_to(user)}
    if user.is_staff:
        allowed.add("totp")
    only = admin_only(user)
    return (only if only is not None else allowed) & set(factors.METHODS)


def bound_methods(user: User) -> list[str]:
    return [f.method for f in Factor.of_user(user.id)]


def choices(user: User) -> list[FactorMethod]:
    """What a verification of ``user`` may use: the bound methods, then 备用码 while some are left; for
    admins under ``admin_methods``, only those (no 备用码: they would be a way around the keys)."""
    only = admin_only(user)
    bound = [factors.METHODS[key] for key in bound_methods(user) if key in factors.METHODS]
    if only is not None:
        return [m for m in bound if m.key in only]
    return bound + [recovery.RECOVERY] if bound and recovery.remaining(user) else bound


def default_choices(user: User) -> list[FactorMethod]:
    """What 默认验证方式 may name: the bound methods a verification may use (备用码 stay the last resort)."""
    return [m for m in choices(user) if m.key != recovery.KEY]


def set_default(user: User, method: str, client: Client) -> None:
    """默认验证方式: the second step opens with ``method`` ("" = the recommended order); 更换验证方式
    still offers every method."""
    if method and method not in {m.key for m in default_choices(user)}:
        raise NotFound(_("该验证方式未绑定,不能设为默认验证方式"), code="not_bound")
    User.update(default_method=method).where(User.id == user.id).execute()
    user.default_method = method
    audit.record("default_method_set", user=user, method=method, client=client)


def admin_only(user: User) -> set[str] | None:
    """The methods policy ``admin_methods`` restricts an admin to, or None (no restriction)."""
    if not user.is_staff:
        return None
    return set(policy.parse_methods(policy.get("admin_methods"))) or None


def method(key: str) -> FactorMethod:
    """The method of a key from a URL or form; NotFound for anything else."""
    found = factors.METHODS.get(key)
    if found is None:
        raise NotFound(_("页面不存在"))
    return found


def row_id(raw: str) -> int:
    """A database id from a form field: ASCII digits within 32 bits, else 0 (matches nothing)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


def verify(
    user: User, method: str, raw_code: str | None, client: Client, purpose: str, session: LoginSession | None = None
) -> str:
    """Check what proves one bound factor (a code, a security key's answer): throttled, strict, used at
    most once; returns the method that proved it ("recovery" when a 备用码 was typed instead).

    A wrong code says how many tries are left once few remain. 备用邮箱 codes are mailed to one
    browser session: only that ``session`` may use them. A factor whose secret cannot be read fails
    closed (503, audited), without counting against the user.
    """
    usable = {m.key for m in choices(user)}
    if recovery.KEY in usable and (method == recovery.KEY or recovery.looks_like(raw_code)):
        method = recovery.KEY
    with throttle.begin("otp", user.account, client.ip, user_agent=client.user_agent) as attempt:
        try:
            if method == recovery.KEY:
                _check_recovery_code(user, raw_code, client)
            elif method not in usable and method in bound_methods(user):
                raise InvalidCode(_("管理员账号只能使用管理员指定的验证方式"), code="method_not_allowed")
            else:
                _check_code(Factor.of(user, method), method, raw_code, session)
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
    return method


def _check_recovery_code(user: User, raw_code: str | None, client: Client) -> None:
    if not recovery.consume(user, raw_code):
        raise InvalidCode(_("备用码错误或已使用"))
    left = recovery.remaining(user)
    audit.record("recovery_code_used", user=user, method=recovery.KEY, client=client, detail=f"{left} left")


def _check_code(factor: Factor | None, method: str, raw_code: str | None, session: LoginSession | None) -> None:
    if factor is None or method not in factors.METHODS:
        raise InvalidCode(NOT_BOUND_MESSAGE)
    factors.METHODS[method].check(factor, raw_code, session)


def binding_purpose(session: LoginSession, user: User, method: str) -> str:
    """May this session start binding ``method`` now? "rebind" for the second half of 修改, "add" for
    one more credential of a method with several (安全密钥), else "bind".

    The method must be offered and not bound yet (修改 replaces instead); binding another factor, or
    another credential, next to a bound one needs a fresh verification (step-up).
    """
    label = factors.METHODS[method].label
    if method not in offered(user):
        raise NotAllowed(_("%(label)s需由管理员开通", label=label))
    if has_grant(session, f"change:{method}"):
        return "rebind"
    bound = bound_methods(user)
    if method in bound and factors.METHODS[method].several:  # 添加 another key, after a fresh verification
        step_up.require(session, f"bind-{method}")
        return "add"
    if method in bound:
        raise Conflict(_("%(label)s已绑定;如需更换请使用“修改”", label=label), code=ALREADY_BOUND)
    if bound:
        step_up.require(session, f"bind-{method}")
    return "bind"


@dataclass
class Pending:
    """An open bind dialog: the method, 绑定 or the second half of 修改 (rebind), what it shows."""

    method: FactorMethod
    purpose: str
    state: object  # the method's own: a TOTP secret, where a code went, a QR ticket, WebAuthn options


@dataclass
class Bound:
    """A bind dialog's step that stored the factor; ``token``: the new session id after forced binding."""

    factor: Factor
    token: str | None


def begin_bind(session: LoginSession, user: User, key: str, client: Client, form=None) -> Pending:
    """Open a method's bind dialog (or again after a refused step, with the submitted ``form``)."""
    found = method(key)
    purpose = binding_purpose(session, user, key)
    return Pending(found, purpose, found.begin_bind(session, user, purpose, client, form))


def send_bind_code(session: LoginSession, user: User, key: str, form, client: Client) -> Pending:
    """发送验证码 to the address being bound (备用邮箱, 短信)."""
    found = method(key)
    purpose = binding_purpose(session, user, key)
    return Pending(found, purpose, found.send_bind_code(session, user, purpose, form, client))


def bind(session: LoginSession, user: User, key: str, form, client: Client) -> Bound | Pending:
    """One step of a bind dialog; once the factor is stored, a forced binding is finished too."""
    from portal.services import login  # login verifies through this module

    found = method(key)
    purpose = binding_purpose(session, user, key)
    result = found.bind(session, user, purpose, form, client)
    if not isinstance(result, Factor):
        return Pending(found, purpose, result)
    return Bound(result, login.finish_forced_binding(session, client))


def send_code(session: LoginSession, user: User, key: str, client: Client) -> str:
    """A code for the second step or a verification, sent to the bound address; where it went (masked)."""
    if key not in bound_methods(user):
        raise NotFound(NOT_BOUND_MESSAGE)
    return method(key).send_code(session, user, client)


def commit_binding(
    session: LoginSession, user: User, method: str, client: Client | None, replaces: bool, detail: str = "", **fields
) -> Factor:
    """Store a newly confirmed factor (inside the caller's transaction); 修改 replaces the old one only now.

    A 修改 spends its grant, and the old factor goes with everything that rested on it (invariant 14);
    the session that bound the factor has just proved it (a fresh verification).
    """
    label = factors.METHODS[method].label
    with db.atomic():
        if replaces:
            if not use_grant(session, f"change:{method}"):
                raise Expired(_("修改的验证已过期,请在网页上重新操作"), code=GRANT_EXPIRED)
            old = Factor.of(user, method)
            Factor.delete().where((Factor.user == user) & (Factor.method == method)).execute()
            # What rested on the old factor goes, unless the new one rests on the same (微信 bound again).
            gone = [old] if old and old.external_id != fields.get("external_id") else []
            revocation.revoke_access(user, f"{method} changed", client, keep=session, removed=gone)
        try:
            with db.atomic():
                factor = Factor.create(user=user, method=method, **fields)
        except peewee.IntegrityError as exc:
            raise Conflict(_("%(label)s已绑定;如需更换请使用“修改”", label=label), code=ALREADY_BOUND) from exc
        sessions.mark_verified(session, method)
        event = "factor_changed" if replaces else "factor_bound"
        audit.record(event, user=user, method=method, client=client, detail=detail or fields.get("label", ""))
    return factor


def commit_scanned_binding(ticket: Ticket, approver: str, client: Client | None, **fields) -> Factor:
    """A phone confirmed a bind QR (微信, 邮箱安全 App): the ticket is decided and the factor stored, together.

    Only a browser past the password (full, or forced to bind) may bind (invariant 7).
    """
    if ticket.session.stage not in (sessions.FULL, sessions.BINDING):
        raise NotAllowed(_("网页登录未完成"), code=SESSION_NOT_FULL)
    with db.atomic():
        tickets.decide(ticket, approver, approve=True)
        return commit_binding(ticket.session, ticket.user, ticket.method, client, ticket.replaces, **fields)


def unbind(session: LoginSession, user: User, method: str, via: str, raw_code: str | None, client: Client) -> None:
    """解绑: verified by a code of ``via`` (this factor or another bound one)."""
    check_removable(user, method)
    verify(user, via, raw_code, client, "unbind", session)
    remove(user, method, client, via, session)


LAST_FACTOR = _l("管理员要求启用二次验证,不能解绑唯一的验证方式;如需更换请使用“修改”")


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
            raise NotFound(NOT_BOUND_MESSAGE)
        if policy.must_bind(user) and not Factor.select().where(Factor.user == user).exists():
            raise NotAllowed(LAST_FACTOR)  # rolls the delete back
        Enrollment.delete().where((Enrollment.user == user) & (Enrollment.method == method)).execute()
        if not Factor.select().where(Factor.user == user).exists():
            recovery.void(user)  # no factor left to recover
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
        raise NotFound(NOT_BOUND_MESSAGE)


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
