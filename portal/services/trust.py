"""Trusted devices (信任此设备): a browser that skips the second step for a while."""

from __future__ import annotations

from datetime import timedelta

from flask_babel import gettext as _

from portal import crypto
from portal.models import LoginSession, TrustedDevice, User, utcnow
from portal.services import audit, policy, step_up
from portal.services.client import Client
from portal.services.errors import NotFound


def lifetime() -> timedelta:
    return timedelta(days=policy.number("trusted_device_days"))


def allowed(user: User) -> bool:
    """Admins verify every login: their pages can reset anyone's second factor (DESIGN §5 /admin)."""
    return not user.is_staff


def issue(user: User, client: Client, method: str) -> str | None:
    """Remember this browser for ``user``; returns the cookie token (None where not allowed)."""
    if not allowed(user):
        return None
    token = crypto.new_token()
    TrustedDevice.create(
        token_hash=crypto.token_hash(token),
        user=user,
        user_agent=client.user_agent,
        ip=client.ip,
        method=method,
        expires_at=utcnow() + lifetime(),
    )
    audit.record("trusted_device_added", user=user, method=method, client=client)
    return token


def is_trusted(token: str | None, user: User) -> bool:
    """True if the token names a live trusted device of this very user (and marks it used)."""
    if not token or len(token) > 128 or not allowed(user):
        return False
    now = utcnow()
    return (
        TrustedDevice.update(last_used_at=now)
        .where(
            (TrustedDevice.token_hash == crypto.token_hash(token))
            & (TrustedDevice.user == user)
            & TrustedDevice.revoked_at.is_null()
            & (TrustedDevice.expires_at > now)
        )
        .execute()
        == 1
    )


def active(user: User) -> list[TrustedDevice]:
    return list(
        TrustedDevice.select()
        .where(
            (TrustedDevice.user == user) & TrustedDevice.revoked_at.is_null() & (TrustedDevice.expires_at > utcnow())
        )
        .order_by(TrustedDevice.created_at.desc())
    )


def revoke(user: User, device_id: int, client: Client | None, note: str = "") -> None:
    """Revoke one trusted device of ``user``; ``note`` (e.g. "by <admin>; reason: …") joins the audit detail."""
    changed = (
        TrustedDevice.update(revoked_at=utcnow())
        .where((TrustedDevice.id == device_id) & (TrustedDevice.user == user) & TrustedDevice.revoked_at.is_null())
        .execute()
    )
    if not changed:
        raise NotFound(_("该设备不存在或已移除"))
    detail = f"id={device_id}; {note}" if note else f"id={device_id}"
    audit.record("trusted_device_revoked", user=user, client=client, detail=detail)


def clear(session: LoginSession, client: Client) -> int:
    """全部清除 by the user: every trusted device of this account goes (needs a fresh verification)."""
    step_up.require(session, "trusted-devices")
    return revoke_all(session.user, "revoked by user", client)


def revoke_all(user: User, reason: str, client: Client | None = None) -> int:
    """Revoke every trusted device of a user (password change, factor unbound or changed)."""
    count = (
        TrustedDevice.update(revoked_at=utcnow())
        .where((TrustedDevice.user == user) & TrustedDevice.revoked_at.is_null())
        .execute()
    )
    if count:
        audit.record("trusted_devices_revoked", user=user, client=client, detail=reason)
    return count
