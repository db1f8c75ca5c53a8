"""The login: password step, then second step, trusted devices and forced binding."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from portal import directory
from portal.db import db
from portal.models import LoginSession, User, utcnow
from portal.services import (
    accounts,
    audit,
    factors,
    new_sign_ins,
    passwords,
    policy,
    sessions,
    temporary_access,
    throttle,
    trust,
)
from portal.services.client import Client
from portal.services.errors import Conflict, InvalidCredentials, NotAllowed
from portal.timezone import local_clock


@dataclass
class Step:
    token: str  # new session cookie
    stage: str
    trust_token: str | None = None  # new trusted-device cookie


def password_step(
    account: str, password: str, client: Client, previous: LoginSession | None, trust_token: str | None
) -> Step:
    """Check account + password; open a session at the stage the account needs next."""
    login = account.strip()[:254]
    account = accounts.normalize(login)
    with throttle.begin(
        "password", account, client.ip, user_agent=client.user_agent
    ) as attempt:  # in front of the directory too
        try:
            user = directory.authenticate(login, password)
        except InvalidCredentials:
            audit.record(
                "login_password", user=User.by_account(account), account=account, outcome="fail", client=client
            )
            raise
        if user.disabled:
            audit.record("login_password", user=user, outcome="fail", client=client, detail="disabled")
            raise InvalidCredentials(directory.WRONG)
        attempt.succeeded()
    rehash = user.password_hash and passwords.needs_rehash(user.password_hash)
    new_hash = passwords.rehash(password) if rehash else None
    with db.atomic():  # all of it or nothing: no session without its audit trail
        if new_hash:
            User.update(password_hash=new_hash).where(User.id == user.id).execute()
        stage, skipped_by = _stage_after_password(user, trust_token, client)
        token = sessions.start(user, stage, client, previous, second_step=skipped_by)
        audit.record("login_password", user=user, client=client, detail=f"next={stage}")
        if stage == sessions.FULL:  # every finished login has one login_complete (the reports count them)
            audit.record("login_complete", user=user, client=client, detail=SKIP_DETAILS[skipped_by])
            new_sign_ins.observe(user, client, trusted_device=skipped_by == "trusted_device")
    return Step(token, stage)


# Why a login needed no second step: LoginSession.second_step -> the login_complete audit detail.
SKIP_DETAILS = {"trusted_device": "trusted device", "trusted_network": "trusted_network", "": "no second factor"}


def _stage_after_password(user: User, trust_token: str | None, client: Client) -> tuple[str, str]:
    """(the stage the session opens at, why it skipped the second step: LoginSession.second_step).

    A user with a factor skips it on a trusted device, or from a trusted network: never an admin,
    and not while the second step is locked (someone is guessing codes: the lock must hold). Risk
    step-up (policy risk_step_up; admins always): from a new place a trusted device skips nothing. A user
    without a factor who must bind still binds first, also from a trusted network: the network waives
    the code, not the enrolment that the admin's policy demands.
    """
    if factors.choices(user):
        if trust_token and not new_sign_ins.steps_up(user, client) and trust.is_trusted(trust_token, user):
            return sessions.FULL, "trusted_device"
        if _network_skips(user, client):
            return sessions.FULL, "trusted_network"
        return sessions.SECOND_FACTOR, ""
    if factors.bound_methods(user) and factors.admin_only(user) is None:
        return sessions.SECOND_FACTOR, ""  # a factor this release cannot check: fail closed, never skip the step
    return (sessions.BINDING if policy.must_bind(user) else sessions.FULL), ""


def _network_skips(user: User, client: Client) -> bool:
    if user.is_staff or not policy.in_trusted_network(client.ip):
        return False
    return throttle.locked_until("otp", user.account, client.ip) is None


def second_step(session: LoginSession, method: str, raw_code: str | None, trust_device: bool, client: Client) -> Step:
    """Verify the second factor; the session becomes full under a new id."""
    if session.stage != sessions.SECOND_FACTOR:
        raise Conflict(_("无需二次验证"), code="not_pending")
    if method == temporary_access.KEY:  # 使用临时访问码: passes this step once, then the user must bind
        return Step(temporary_access.sign_in(session, raw_code, client), sessions.BINDING)
    method = factors.verify(session.user, method, raw_code, client, "login", session)
    with db.atomic():
        token = sessions.advance(session, sessions.SECOND_FACTOR, sessions.FULL, method)
        trust_token = trust.issue(session.user, client, method) if trust_device else None
        audit.record("login_complete", user=session.user, method=method, client=client)
        new_sign_ins.observe(session.user, client)
    return Step(token, sessions.FULL, trust_token)


def complete_by_scan(session: LoginSession, ticket, client: Client) -> Step:
    """The phone approved this browser's login ticket (确认授权并信任此设备 or 临时登录)."""
    with db.atomic():
        token = sessions.advance(session, sessions.SECOND_FACTOR, sessions.FULL, ticket.method)
        trust_token = trust.issue(session.user, client, ticket.method) if ticket.trust_device else None
        detail = "by push" if ticket.channel == "push" else "by scan"
        audit.record("login_complete", user=session.user, method=ticket.method, client=client, detail=detail)
        new_sign_ins.observe(session.user, client)
    return Step(token, sessions.FULL, trust_token)


def finish_forced_binding(session: LoginSession, client: Client) -> str | None:
    """After a forced user binds a factor, the session becomes full (new id); else None.

    A session that came in by a temporary code must have bound or changed a factor itself: the lost
    one being bound is no proof (binding marks the session verified by the new factor).
    """
    if session.stage != sessions.BINDING:
        return None
    usable = factors.choices(session.user)
    if not usable or temporary_access.awaiting_new_factor(session):
        raise NotAllowed(_("请先完成绑定"))
    token = sessions.advance(session, sessions.BINDING, sessions.FULL, usable[0].key)  # binding it proved it
    audit.record("login_complete", user=session.user, client=client, detail="after forced binding")
    new_sign_ins.observe(session.user, client)
    return token


def lock_notice(user: User, client: Client) -> str | None:
    """While the second step of this account (or this IP) is locked: until when, in local time."""
    now = utcnow()
    until = throttle.locked_until("otp", user.account, client.ip, now)
    return _("尝试次数过多,请于 %(time)s 后再试", time=local_clock(until, now)) if until else None


def logout(session: LoginSession, client: Client) -> None:
    sessions.end(session, "logout")
    audit.record("logout", user=session.user, client=client)
