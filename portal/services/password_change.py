"""修改密码: a user changes their own main password, where it lives.

``directory.change_password`` sets it where it lives: a local account's argon2 hash here, a directory
account's password in LDAP (RFC 3062, as the user, when PORTAL_LDAP_PASSWORD_CHANGE=on). Anywhere
else the page links to PORTAL_PASSWORD_CHANGE_URL. A wrong current password is a failed attempt (throttled like the
login); a change ends the user's other sessions and trusted devices (invariant 14).
"""

from __future__ import annotations

from functools import cache

from flask import current_app
from flask_babel import gettext as _

from portal import directory
from portal.db import db
from portal.models import LoginSession, User
from portal.services import audit, revocation, throttle
from portal.services.client import Client
from portal.services.errors import InvalidCredentials, InvalidInput, NotAllowed

MIN_LENGTH = 10
COMMON = 10_000  # the most common passwords refused


def where(user: User) -> str:
    """Where this account's password can be changed: "here" (local or LDAP) or "elsewhere"."""
    return "here" if directory.password_changeable(user) else "elsewhere"


def elsewhere_url() -> str:
    return str(current_app.config["PASSWORD_CHANGE_URL"])


def check_new(password: str, account: str) -> None:
    """The rules for a new password: long enough, not the account's name, not a common password."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(_("新密码至少 %(n)s 个字符", n=MIN_LENGTH))
    if len(password) > 256:
        raise InvalidInput(_("新密码过长"))
    name = account.partition("@")[0].lower()
    if len(name) >= 3 and name in password.lower():
        raise InvalidInput(_("新密码不能包含账号名"))
    if password.lower() in _common():
        raise InvalidInput(_("该密码过于常见,容易被猜中,请换一个"))


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # the passwords most often found in leaks

    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"][:COMMON])


def change(session: LoginSession, current: str, new: str, repeat: str, client: Client) -> None:
    """Check the current password, then set the new one where it lives; other sessions end."""
    user = session.user
    if where(user) != "here":
        raise NotAllowed(_("该账号的密码由学校统一身份认证管理,请到那里修改"))
    if new != repeat:
        raise InvalidInput(_("两次输入的新密码不一致"))
    check_new(new, user.account)
    with throttle.begin("password", user.account, client.ip, user_agent=client.user_agent) as attempt:
        try:
            directory.change_password(user, current, new)
        except InvalidCredentials:
            audit.record("password_change", user=user, outcome="fail", client=client, detail="wrong current password")
            raise
        attempt.succeeded()
    with db.atomic():
        revocation.revoke_access(user, "password_changed", client, keep=session)
        audit.record("password_changed", user=user, client=client, detail="by the user")
