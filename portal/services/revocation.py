"""What ends when what proves a user's identity changes (invariant 14).

A factor unbound or replaced (解绑, 修改), a new password, an admin reset, a disabled account: the
user's other browser sessions end (the one that made the change stays, if any), every trusted device
and every single sign-on token is revoked, and what rested on a removed factor goes with it: the
邮箱安全 App's device record and the mini-program tokens of that WeChat user (the mini-program signs
in again silently).
"""

from __future__ import annotations

from collections.abc import Iterable

from portal.models import Factor, LoginSession, User
from portal.oidc import tokens
from portal.services import sessions, trust
from portal.services.client import Client


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
