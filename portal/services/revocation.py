"""What ends when what proves a user's identity changes (invariant 14).

A factor unbound or replaced (解绑, 修改), a new password, an admin reset, a disabled account: the
user's other browser sessions end (the one that made the change stays, if any), every trusted device
and every single sign-on token is revoked, and what rested on a removed factor goes with it: the
邮箱安全 App's device record and the mini-program tokens of that WeChat user (the mini-program signs
in again silently).
"""

from __future__ import annotations

from collections.abc import Iterable

from portal.db import db
from portal.models import Factor, LoginSession, User
from portal.oidc import tokens
from portal.services import audit, sessions, step_up, trust
from portal.services.client import Client

SECURE_ACTION = "secure-account"  # 保护帐号, the "如非本人操作" link of every security notice


def revoke_access(
    user: User,
    reason: str,
    client: Client | None = None,
    keep: LoginSession | None = None,
    removed: Iterable[Factor] = (),
) -> None:
    """End the user's sessions but ``keep``, revoke trusted devices and what rested on ``removed``."""
    sessions.end_all(user, reason, keep=keep)
    trust.revoke_all(user, reason, client)
    tokens.revoke_user(user)  # single sign-on tokens, the keeping session's too
    for factor in removed:
        _drop_dependents(factor)


def _drop_dependents(factor: Factor) -> None:
    from portal.services.factors import METHODS  # the methods revoke through here

    if factor.method in METHODS:
        METHODS[factor.method].on_removed(factor)


def secure_account(current: LoginSession, client: Client) -> int:
    """保护帐号: after a fresh verification, end every other session, trusted device and SSO token.

    Returns how many other browser sessions ended. The factors stay bound: the page leads on to
    修改密码 and 二次验证设置, where the user removes what is not theirs.
    """
    step_up.require(current, SECURE_ACTION)
    with db.atomic():
        ended = sessions.end_all(current.user, "secured_by_user", keep=current)
        devices = trust.revoke_all(current.user, "secured_by_user", client)
        tokens.revoke_user(current.user)
        audit.record("account_secured", user=current.user, client=client, detail=f"sessions={ended} devices={devices}")
    return ended
