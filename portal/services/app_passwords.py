"""客户端专用密码 (app passwords) and the rule for IMAP/POP3/SMTP logins (DESIGN §4.12).

Once a user has bound any second factor (or the admin policy says so for everyone), mail clients
log in only with an app password; the main password keeps working there only for users without
one. App passwords never open a web session: the web login checks the main password only.
"""

from __future__ import annotations

import hmac
import secrets
import string
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask_babel import gettext as _

from portal import crypto, directory
from portal.config import MAIL_PROTOCOLS
from portal.db import db, lock_rows
from portal.models import AppPassword, Factor, LoginSession, User, utcnow
from portal.services import accounts, audit, mail_logins, policy, step_up, throttle
from portal.services.client import Client
from portal.services.errors import Conflict, InvalidCredentials, InvalidInput, NotFound, Throttled

LENGTH = 16
ALPHABET = string.ascii_letters + string.digits
CAP = 20  # app passwords per user
NAME_MAX = 32
# Categories a name may not contain: control, format (bidi overrides, zero-width), surrogates,
# private use, unassigned, line and paragraph separators.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# A busy client logs in every few minutes: its last use is written only when this much older,
# or when the protocol or the address changed.
USE_RECORD_INTERVAL = timedelta(minutes=5)

# Mail clients show these texts to the user (nginx: Auth-Status); mail protocols want ASCII.
INVALID = "Invalid login or password"
APP_PASSWORD_REQUIRED = "Use an app password: this account requires one for mail clients (see the 2FA portal)"
THROTTLED = "Too many failed logins, try again later"


@dataclass(frozen=True)
class MailLogin:
    """The answer to one IMAP/POP3/SMTP login."""

    ok: bool
    user: User | None
    reason: str  # ok | invalid_credentials | app_password_required | disabled | throttled | bad_request
    message: str
    retry_after: int = 0


def generate() -> str:
    """16 random letters and digits from the OS's CSPRNG (about 95 bits)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def grouped(plaintext: str) -> list[str]:
    """'GdGneAF6iFvUg6rB' → ['GdGn', 'eAF6', 'iFvU', 'g6rB'] for display."""
    return [plaintext[i : i + 4] for i in range(0, len(plaintext), 4)]


def clean_name(raw: str | None) -> str:
    """A 密码名称: 1–32 characters, no control or invisible formatting characters."""
    name = unicodedata.normalize("NFC", (raw or "").strip())
    if not name:
        raise InvalidInput(_("请输入密码名称"), code="name_required")
    if len(name) > NAME_MAX:
        raise InvalidInput(_("密码名称不能超过 %(max)s 个字符", max=NAME_MAX), code="name_too_long")
    if any(unicodedata.category(ch) in FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidInput(_("密码名称不能包含控制字符"), code="name_invalid")
    return name


def create(user: User, name: str | None, client: Client) -> tuple[AppPassword, str]:
    """Make an app password; returns the row and the plaintext, which is never available again."""
    name = clean_name(name)
    plaintext = generate()
    try:
        with db.atomic():
            # Insert first, count after, with the user's row locked: parallel creations cannot pass the cap.
            lock_rows(User.select(User.id).where(User.id == user.id))
            row = AppPassword.create(user=user, name=name, secret_hash=crypto.token_hash(plaintext))
            if AppPassword.select().where(AppPassword.user == user).count() > CAP:
                raise Conflict(
                    _("最多可设置 %(cap)s 个客户端专用密码,请先删除不再使用的密码", cap=CAP), code="too_many"
                )
    except peewee.IntegrityError as exc:
        raise Conflict(_("已有同名的专用密码,请换一个名称"), code="name_taken") from exc
    audit.record("app_password_created", user=user, client=client, detail=f"id={row.id} name={name}")
    return row, plaintext


def issue(session: LoginSession, name: str | None, client: Client) -> tuple[AppPassword, str]:
    """生成专用密码 in the browser: a long-lived credential, so it needs a fresh verification (step-up)."""
    step_up.require(session, "app-password")
    return create(session.user, name, client)


def listing(user: User) -> list[AppPassword]:
    """The user's app passwords, newest first (name, times, last protocol and IP; never the secret)."""
    return AppPassword.of_user(user.id)


def get(user: User, password_id: int) -> AppPassword:
    """One app password of this user, or NotFound."""
    row = AppPassword.get_or_none((AppPassword.id == password_id) & (AppPassword.user == user))
    if row is None:
        raise NotFound(_("该专用密码不存在或已删除"))
    return row


def delete(user: User, password_id: int, client: Client) -> AppPassword:
    """Delete one app password; the next login with it fails. Returns the deleted row."""
    row = get(user, password_id)
    if not AppPassword.delete().where((AppPassword.id == row.id) & (AppPassword.user == user)).execute():
        raise NotFound(_("该专用密码不存在或已删除"))
    audit.record("app_password_deleted", user=user, client=client, detail=f"id={row.id} name={row.name}")
    return row


def clear(user: User, client: Client) -> int:
    """全部清除: delete every app password of the user; returns how many."""
    count = AppPassword.delete().where(AppPassword.user == user).execute()
    audit.record("app_passwords_cleared", user=user, client=client, detail=f"{count} app password(s)")
    return count


def required(user: User) -> bool:
    """True if mail clients of this user must use an app password (a bound factor, or the admin policy)."""
    if policy.get("mail_requires_app_password") == "on":
        return True
    return Factor.select().where(Factor.user == user).exists()


def authenticate(account: str, password: str, protocol: str, ip: str) -> MailLogin:
    """May ``account`` log in over IMAP/POP3/SMTP with ``password``? Throttled and audited."""
    account, protocol, password = accounts.normalize(account or ""), (protocol or "").strip().lower(), password or ""
    if protocol not in MAIL_PROTOCOLS or not _plausible(account) or len(password) > 256:
        return MailLogin(False, None, "bad_request", INVALID)
    client = Client.of(ip, f"mail/{protocol}")
    try:
        attempt = throttle.begin("mail", account, client.ip, user_agent=client.user_agent)
    except Throttled as exc:
        mail_logins.note(User.by_account(account), account, protocol, client.ip, "throttled")
        return MailLogin(False, None, "throttled", THROTTLED, retry_after=exc.retry_after)
    with attempt:  # a directory that cannot answer raises Unavailable: the slot is given back
        user, reason, app_password = _check(account, password)
        if reason != "ok":
            audit.record(
                "mail_login", user=user, account=account, method=protocol, outcome="fail", client=client, detail=reason
            )
            message = APP_PASSWORD_REQUIRED if reason == "app_password_required" else INVALID
            mail_logins.note(user, account, protocol, client.ip, reason)
            return MailLogin(False, user, reason, message)
        attempt.succeeded()
    mail_logins.note(user, account, protocol, client.ip, "ok")  # 登录记录: counted, written per client and hour
    if app_password is None:
        audit.record("mail_login", user=user, method=protocol, client=client, detail="main password")
    elif _record_use(app_password, protocol, client.ip):  # audited when first seen from here, not per login
        audit.record("mail_login", user=user, method=protocol, client=client, detail=f"app password {app_password.id}")
    return MailLogin(True, user, "ok", "OK")


def _check(login: str, password: str) -> tuple[User | None, str, AppPassword | None]:
    """The rule: an app password always works; the main password (checked where passwords live) only
    where none is required. A directory user the directory no longer finds has no account."""
    user = directory.account_of(login)
    app_password = _match(user, password) if user else None
    if app_password is None:
        try:
            user = directory.authenticate(login, password)
        except InvalidCredentials:
            return user, "invalid_credentials", None
    if user.disabled:
        return user, "disabled", None
    if app_password is None and required(user):
        return user, "app_password_required", None
    return user, "ok", app_password


def _plausible(account: str) -> bool:
    """Something that could be an account: bounded, printable (PostgreSQL text cannot hold NUL)."""
    return 0 < len(account) <= 254 and account.isprintable()


def _match(user: User, password: str) -> AppPassword | None:
    """The user's app password equal to ``password`` (spaces between the groups of four allowed)."""
    candidate = password.replace(" ", "")
    if len(candidate) != LENGTH or not (candidate.isascii() and candidate.isalnum()):
        return None
    digest = crypto.token_hash(candidate)
    row = AppPassword.get_or_none(AppPassword.secret_hash == digest)
    if row is None or row.user_id != user.id or not hmac.compare_digest(row.secret_hash, digest):
        return None
    return row


def _record_use(row: AppPassword, protocol: str, ip: str) -> bool:
    """Note the last use, unless it was noted recently from the same protocol and address.

    The check on the row just read saves the write for a busy client; the conditional UPDATE
    makes parallel logins record (and audit) one use, not one each.
    """
    now = utcnow()
    stale = now - USE_RECORD_INTERVAL
    if row.last_used_at and row.last_used_at > stale and (row.last_protocol, row.last_ip) == (protocol, ip):
        return False
    return (
        AppPassword.update(last_used_at=now, last_protocol=protocol, last_ip=ip)
        .where(
            (AppPassword.id == row.id)
            & (
                AppPassword.last_used_at.is_null()
                | (AppPassword.last_used_at <= stale)
                | (AppPassword.last_protocol != protocol)
                | (AppPassword.last_ip != ip)
            )
        )
        .execute()
        == 1
    )
