"""Codes and tokens of the provider: what they prove, whether they still hold, and ending them.

A token holds only while its browser session holds (invariant 13): portal logout, a disabled
account, an ended or expired session, a second-step lock of the account, and every revocation of
``revocation.revoke_access`` (unbind, 修改, new password, admin reset) end it at once.
"""

from __future__ import annotations

from datetime import datetime

from portal import crypto
from portal.models import LoginSession, OAuthClient, OAuthCode, OAuthToken, User, utcnow
from portal.services import throttle

# RFC 8176 values for how the second step was passed; trusted devices and networks are no factor.
AMR = {
    "totp": ["pwd", "otp", "mfa"],
    "email": ["pwd", "otp", "mfa"],
    "app": ["pwd", "swk", "mfa"],
    "wechat": ["pwd", "mca", "mfa"],
    "trusted_device": ["pwd", "trusted-device"],
    "trusted_network": ["pwd", "trusted-network"],
}


def amr_of(session: LoginSession) -> list[str]:
    return AMR.get(session.second_step, ["pwd", "mfa"] if session.second_step else ["pwd"])


def passed_second_step(session: LoginSession) -> bool:
    """A session an authorization may complete for: both steps, or a step policy let it skip."""
    return bool(session.second_step)


def auth_time(session: LoginSession) -> datetime:
    """When the user last authenticated in this session (the second step, else the password)."""
    return session.verified_at or session.created_at


def session_holds(session: LoginSession, user: User, now: datetime | None = None) -> bool:
    now = now or utcnow()
    if session.ended_at is not None or now >= session.expires_at or user.disabled:
        return False
    return throttle.locked_until("otp", user.account, "", now) is None


def lookup(token: str | None, kind: str = "access") -> OAuthToken | None:
    """The row of an access (or refresh) token, active or not; None if unknown."""
    if not token or len(token) > 200:
        return None
    column = OAuthToken.refresh_hash if kind == "refresh" else OAuthToken.access_hash
    return with_parties().where(column == crypto.token_hash(token)).first()


def with_parties():
    """Token rows with their client, user and browser session (what ``is_active`` reads)."""
    return (
        OAuthToken.select(OAuthToken, OAuthClient, User, LoginSession)
        .join(OAuthClient)
        .switch(OAuthToken)
        .join(User)
        .switch(OAuthToken)
        .join(LoginSession)
    )


def is_active(row: OAuthToken, kind: str = "access", now: datetime | None = None) -> bool:
    now = now or utcnow()
    ends = row.expires_at if kind == "access" else row.refresh_expires_at
    if row.revoked_at is not None or ends is None or now >= ends:
        return False
    return session_holds(row.session, row.user, now)


def claim_code(code: str, client: OAuthClient) -> OAuthCode | None:
    """Use an authorization code once. A second redemption revokes what the first one issued."""
    row = OAuthCode.get_or_none((OAuthCode.code_hash == crypto.token_hash(code)) & (OAuthCode.client == client))
    if row is None:
        return None
    now = utcnow()
    won = (
        OAuthCode.update(used_at=now)
        .where((OAuthCode.id == row.id) & OAuthCode.used_at.is_null() & (OAuthCode.expires_at > now))
        .execute()
    )
    if won != 1:
        if row.used_at is not None or row.expires_at > now:  # used before: the code was stolen or replayed
            OAuthToken.update(revoked_at=now).where(
                (OAuthToken.code == row) & OAuthToken.revoked_at.is_null()
            ).execute()
        return None
    return row


def claim_refresh(row: OAuthToken) -> bool:
    """Rotate a refresh token: exactly one caller wins; reuse of a rotated one ends its whole family."""
    now = utcnow()
    won = OAuthToken.update(revoked_at=now).where((OAuthToken.id == row.id) & OAuthToken.revoked_at.is_null()).execute()
    if won != 1:
        revoke_family(row.family)
    return won == 1


def revoke_family(family: str) -> None:
    OAuthToken.update(revoked_at=utcnow()).where(
        (OAuthToken.family == family) & OAuthToken.revoked_at.is_null()
    ).execute()


def revoke_user(user: User, keep: LoginSession | None = None) -> int:
    """End every token of a user (what proves their identity changed), but those of session ``keep``."""
    query = OAuthToken.update(revoked_at=utcnow()).where((OAuthToken.user == user) & OAuthToken.revoked_at.is_null())
    if keep is not None:
        query = query.where(OAuthToken.session != keep)
    return query.execute()


def revoke_session(session: LoginSession) -> int:
    """End the tokens issued in one browser session (the user ended it on 登录设备)."""
    return (
        OAuthToken.update(revoked_at=utcnow())
        .where((OAuthToken.session == session) & OAuthToken.revoked_at.is_null())
        .execute()
    )


def subject(user: User) -> str:
    """``sub``: stable for the account row, never the same for a later account with a recycled name or id."""
    return crypto.token_hash(f"oidc-sub:{user.id}:{user.created_at.isoformat()}")[:32]
