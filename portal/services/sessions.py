"""Server-side login sessions. The cookie holds a random token; the table holds its HMAC.

A session is live until it ends (logout, revocation), idles out, reaches its absolute lifetime or,
while half-logged-in (password passed, second step or forced binding not done), passes
PORTAL_PENDING_MINUTES (invariant 15). ``verified_at`` is the last time this session proved a
second factor; long-lived credentials ask for a fresh proof when it is older than
PORTAL_STEP_UP_MINUTES.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _

from portal import crypto
from portal.models import LoginSession, User, utcnow
from portal.services import policy
from portal.services.client import Client
from portal.services.errors import Conflict

SECOND_FACTOR = "second_factor"  # password passed, second step pending
BINDING = "binding"  # password passed, forced to bind a factor first
FULL = "full"
PENDING = (SECOND_FACTOR, BINDING)

TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often


def start(user: User, stage: str, client: Client, previous: LoginSession | None = None, second_step: str = "") -> str:
    """Open a session after the password step; ends ``previous``; returns the cookie token.

    ``second_step`` says why a session opened ``full`` needs none (trusted device / network).
    """
    if previous is not None:
        end(previous, "replaced")
    token = crypto.new_token()
    LoginSession.create(
        token_hash=crypto.token_hash(token),
        user=user,
        stage=stage,
        second_step=second_step,
        ip=client.ip,
        user_agent=client.user_agent,
        expires_at=utcnow() + timedelta(hours=int(current_app.config["SESSION_MAX_HOURS"])),
    )
    return token


def resolve(token: str | None) -> LoginSession | None:
    """The live session for a cookie token, or None (unknown, ended, idle or too old)."""
    if not token or len(token) > 128:
        return None
    session = (
        LoginSession.select(LoginSession, User)
        .join(User)
        .where(LoginSession.token_hash == crypto.token_hash(token))
        .first()
    )
    if session is None or not is_live(session):
        return None
    now = utcnow()
    if now - session.last_seen_at >= TOUCH_EVERY:
        LoginSession.update(last_seen_at=now).where(LoginSession.id == session.id).execute()
    return session


def is_live(session: LoginSession) -> bool:
    """Whether the session may still act; a session found dead (disabled, too old, idle) is ended."""
    if session.ended_at is not None:
        return False
    reason = _end_reason(session, utcnow())
    if reason:
        end(session, reason)
        session.ended_at = utcnow()
    return not reason


def _end_reason(session: LoginSession, now: datetime) -> str:
    config = current_app.config
    idle = timedelta(minutes=int(config["SESSION_IDLE_MINUTES"]))
    pending = timedelta(minutes=int(config["PENDING_MINUTES"]))
    if session.user.disabled:
        return "disabled"
    if now >= session.expires_at or now - session.last_seen_at >= idle:
        return "expired"
    if session.stage in PENDING and now - session.created_at >= pending:
        return "pending_expired"
    return ""


def advance(session: LoginSession, from_stage: str, to_stage: str, method: str, proved: bool = True) -> str:
    """Move to the next stage under a new token; only one concurrent caller can win.

    Every step that completes a login proved a second factor, ``method`` (a trusted device skips ``advance``),
    except 稍后绑定 (``proved=False``: a user with no factor, who has proved none).
    """
    token = crypto.new_token()
    now = utcnow()
    verified_at = now if proved else session.verified_at
    changed = (
        LoginSession.update(
            token_hash=crypto.token_hash(token),
            stage=to_stage,
            last_seen_at=now,
            verified_at=verified_at,
            second_step=method,
        )
        .where(
            (LoginSession.id == session.id)
            & (LoginSession.token_hash == session.token_hash)
            & (LoginSession.stage == from_stage)
            & LoginSession.ended_at.is_null()
        )
        .execute()
    )
    if changed != 1:
        raise Conflict(_("登录状态已变化,请重新登录"), code="session_changed")
    session.token_hash, session.stage, session.verified_at = crypto.token_hash(token), to_stage, verified_at
    session.second_step = method
    return token


def mark_verified(session: LoginSession, method: str) -> None:
    """This session has just proved factor ``method`` (解绑/修改 verification, step-up, a new factor).

    A session that had skipped the second step (trusted device or network, no factor yet) now has passed it.
    """
    now = utcnow()
    LoginSession.update(verified_at=now, second_step=method).where(LoginSession.id == session.id).execute()
    session.verified_at, session.second_step = now, method


def freshly_verified(session: LoginSession) -> bool:
    """Proved a second factor within PORTAL_STEP_UP_MINUTES (a trusted-device login never has)."""
    window = timedelta(minutes=policy.number("step_up_minutes"))
    return session.verified_at is not None and utcnow() - session.verified_at < window


def end(session: LoginSession, reason: str) -> None:
    LoginSession.update(ended_at=utcnow(), end_reason=reason).where(
        (LoginSession.id == session.id) & LoginSession.ended_at.is_null()
    ).execute()


def end_all(user: User, reason: str, keep: LoginSession | None = None) -> int:
    """End every live session of a user but ``keep`` (the one that made the change, if any)."""
    query = LoginSession.update(ended_at=utcnow(), end_reason=reason).where(
        (LoginSession.user == user) & LoginSession.ended_at.is_null()
    )
    if keep is not None:
        query = query.where(LoginSession.id != keep.id)
    return query.execute()
