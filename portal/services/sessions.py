"""Server-side login sessions. The cookie holds a random token; the table holds its HMAC."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from portal import crypto
from portal.models import LoginSession, User, utcnow
from portal.services.client import Client
from portal.services.errors import Conflict

SECOND_FACTOR = "second_factor"  # password passed, second step pending
BINDING = "binding"  # password passed, forced to bind a factor first
FULL = "full"

TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often


def start(user: User, stage: str, client: Client, previous: LoginSession | None = None) -> str:
    """Open a session after the password step; ends ``previous``; returns the cookie token."""
    if previous is not None:
        end(previous, "replaced")
    token = crypto.new_token()
    LoginSession.create(
        token_hash=crypto.token_hash(token),
        user=user,
        stage=stage,
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
    if session is None or session.ended_at is not None:
        return None
    now = utcnow()
    idle = timedelta(minutes=int(current_app.config["SESSION_IDLE_MINUTES"]))
    if session.user.disabled:
        end(session, "disabled")
        return None
    if now >= session.expires_at or now - session.last_seen_at >= idle:
        end(session, "expired")
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        LoginSession.update(last_seen_at=now).where(LoginSession.id == session.id).execute()
    return session


def advance(session: LoginSession, from_stage: str, to_stage: str) -> str:
    """Move to the next stage under a new token; only one concurrent caller can win."""
    token = crypto.new_token()
    changed = (
        LoginSession.update(token_hash=crypto.token_hash(token), stage=to_stage, last_seen_at=utcnow())
        .where(
            (LoginSession.id == session.id)
            & (LoginSession.token_hash == session.token_hash)
            & (LoginSession.stage == from_stage)
            & LoginSession.ended_at.is_null()
        )
        .execute()
    )
    if changed != 1:
        raise Conflict("登录状态已变化,请重新登录", code="session_changed")
    session.token_hash, session.stage = crypto.token_hash(token), to_stage
    return token


def end(session: LoginSession, reason: str) -> None:
    LoginSession.update(ended_at=utcnow(), end_reason=reason).where(
        (LoginSession.id == session.id) & LoginSession.ended_at.is_null()
    ).execute()


def end_all(user: User, reason: str) -> int:
    """End every live session of a user (logout everywhere, password change, admin reset)."""
    return (
        LoginSession.update(ended_at=utcnow(), end_reason=reason)
        .where((LoginSession.user == user) & LoginSession.ended_at.is_null())
        .execute()
    )
