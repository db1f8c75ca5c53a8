"""Where primary passwords are checked: the portal's own argon2 store, the university's LDAP, or the
mail store's IMAP login (``PORTAL_PASSWORD_BACKEND``: local | ldap | imap).

Everything that checks a main password (the web login, ``/mail/auth``, checkpassword) asks
``authenticate``; nothing else knows which backend is in use. An account that has a local password
(``user create``, the demo) keeps using it whatever the backend (break-glass admins). A directory
user gets an account row at the first successful login (no local password: ``password_hash`` is
empty); its display name is refreshed at each login. A backend that cannot answer raises
Unavailable (503: "try again"), never "wrong password".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import peewee
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.config import ConfigError
from portal.db import db
from portal.models import User, utcnow
from portal.services import accounts, audit, passwords
from portal.services.errors import InvalidCredentials, Unavailable

log = logging.getLogger(__name__)
BACKENDS = ("local", "ldap", "imap")
WRONG = _l("账号或密码错误")
DOWN = _l("系统繁忙,暂时无法校验密码,请稍后再试")


@dataclass(frozen=True)
class Principal:
    """Who a directory says a login is."""

    account: str  # the canonical account (a mail address): the portal's account name
    name: str = ""
    mail: str = ""
    directory_id: str = ""  # a stable id in the directory (LDAP entryUUID); "" where there is none


class Backend(Protocol):
    name: str
    changes_passwords: bool  # 修改密码 can set a new password there

    def check(self, login: str, password: str) -> Principal:
        """The principal if ``password`` is right; InvalidCredentials if not; Unavailable if unsure."""

    def find(self, login: str) -> Principal | None:
        """Who ``login`` is, without a password (None: not there, or no longer allowed in)."""


class DirectoryDown(Unavailable):
    """The directory did not answer (in time); the login may be right."""

    code = "directory_unavailable"

    def __init__(self, detail: str):
        super().__init__(DOWN)
        self.detail = detail


def backend_name() -> str:
    return str(current_app.config["PASSWORD_BACKEND"])


def holds_passwords() -> bool:
    """True when passwords live outside the portal (LDAP, IMAP)."""
    return backend_name() != "local"


def build(config) -> Backend | None:
    """The directory a configuration names (None: the local store); refuses unsafe settings (ConfigError)."""
    name = str(config["PASSWORD_BACKEND"])
    if name not in BACKENDS:
        raise ConfigError(f"PORTAL_PASSWORD_BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "ldap":
        from portal.directory.ldap import LdapDirectory

        return LdapDirectory.from_config(config)
    if name == "imap":
        from portal.directory.imap import ImapDirectory

        return ImapDirectory.from_config(config)
    return None


def init_app(app) -> None:
    """Check the directory settings at start-up (a bad one refuses to start, not to log in)."""
    app.extensions["portal.directory"] = build(app.config)


def backend() -> Backend | None:
    """The configured directory of this app (None for the local store)."""
    return current_app.extensions["portal.directory"]


def authenticate(login: str, password: str) -> User:
    """The account row of ``login`` if ``password`` is its main password; else InvalidCredentials."""
    account = accounts.normalize(login)[:254]
    user = User.by_account(account)
    if user is not None and user.password_hash:  # a local password: the demo, break-glass admins
        if not passwords.verify(user.password_hash, password):
            raise InvalidCredentials(WRONG)
        return user
    directory = backend()
    if directory is None:
        passwords.verify(None, password)  # as costly as a real check: no hint that the account is unknown
        raise InvalidCredentials(WRONG)
    return provision(_ask(directory, account, lambda: directory.check(login, password)))


def _ask(directory: Backend, account: str, question):
    """Ask the directory; if it cannot answer, say so in the log and the audit trail, then raise."""
    try:
        return question()
    except DirectoryDown as exc:
        log.error("password backend %s unavailable: %s", directory.name, exc.detail)
        audit.record("directory_unavailable", account=account, outcome="error", detail=exc.detail[:1000])
        raise


def password_changeable(user: User) -> bool:
    """Whether 修改密码 can change this account's password (a local one, or a directory that lets it)."""
    directory = backend()
    return bool(user.password_hash) or (directory is not None and directory.changes_passwords)


def change_password(user: User, current: str, new: str) -> None:
    """Set a new main password where it lives, after checking the current one (InvalidCredentials)."""
    if user.password_hash:
        if not passwords.verify(user.password_hash, current):
            raise InvalidCredentials(_("当前密码错误"))
        User.update(password_hash=passwords.hash_password(new), password_changed_at=utcnow()).where(
            User.id == user.id
        ).execute()
        return
    directory = backend()
    if directory is None or not directory.changes_passwords:
        raise InvalidCredentials(_("该账号的密码不能在这里修改"))
    directory.change_password(user.account, current, new)


def account_of(login: str) -> User | None:
    """The account row a login names without a password (mail logins by app password), if its owner
    is still there: a directory user the directory no longer finds has no account."""
    account = accounts.normalize(login)[:254]
    user = User.by_account(account)
    directory = backend()
    if directory is None or (user is not None and user.password_hash):
        return user
    principal = _ask(directory, account, lambda: directory.find(login))
    return User.by_account(principal.account) if principal else None


def account_for_admin(login: str) -> User | None:
    """The account row of a directory user found without a password (to make them an admin in advance)."""
    directory = backend()
    principal = directory.find(login) if directory is not None else None
    return provision(principal) if principal else None


def provision(principal: Principal) -> User:
    """The account row of a directory user: created at the first login, its name kept current.

    An account with a local password does not take the directory's (logged in to by uid, say): its
    local password is the one that counts.
    """
    user = User.by_account(principal.account)
    if user is not None and user.password_hash:
        raise InvalidCredentials(WRONG)
    if user is None:
        try:
            with db.atomic():
                user = User.create(
                    account=principal.account,
                    name=principal.name[:100],
                    password_hash="",
                    directory_id=principal.directory_id[:128],
                )
            audit.record("user_provisioned", user=user, detail=f"from {backend_name()} {principal.directory_id}")
        except peewee.IntegrityError:  # created by a parallel first login
            user = User.by_account(principal.account)
        return user
    fresh = {
        "name": principal.name[:100] or user.name,
        "directory_id": principal.directory_id[:128] or user.directory_id,
    }
    if fresh != {"name": user.name, "directory_id": user.directory_id}:
        User.update(fresh).where(User.id == user.id).execute()
        user.name, user.directory_id = fresh["name"], fresh["directory_id"]
    return user
