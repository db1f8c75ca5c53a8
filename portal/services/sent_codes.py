"""Codes sent on request (备用邮箱 by mail, 短信 by text): six digits, usable once, by the browser
session that asked; stored as salted HMACs, the address encrypted.

A new code replaces the session's previous one for the same channel and purpose. Sending is capped per
account and IP (``throttle.spend``: as many sends per window as failures are allowed) and needs a pause
between two; wrong codes are throttled where they are checked (factors.verify). What differs between
mail and text (how long a code lives, how it is delivered) is the method's ``Channel``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _

from portal import crypto, i18n
from portal.models import LoginSession, MailedCode, User, utcnow
from portal.services import audit, throttle
from portal.services.client import Client
from portal.services.errors import Throttled

RESEND_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Channel:
    """How one method sends its codes."""

    method: str  # email | sms
    ttl: timedelta
    what: str  # for a cap's message: _l("发送验证码邮件"), shown in the language of the request
    deliver: Callable[[str, str, str, Client], None]  # (address, code, purpose, client); raises if not sent
    mask: Callable[[str], str]
    sent_event: str  # the audit event of a sent code: mail_code_sent, sms_code_sent

    @property
    def minutes(self) -> int:
        return int(self.ttl.total_seconds() // 60)


def send(session: LoginSession, user: User, channel: Channel, purpose: str, address: str, client: Client) -> MailedCode:
    """Send a fresh code to ``address``; the session's older code for ``purpose`` stops working."""
    last = pending(session, channel, purpose)
    if last is not None and last.created_at > utcnow() - RESEND_AFTER:
        wait = int((last.created_at + RESEND_AFTER - utcnow()).total_seconds()) + 1
        raise Throttled(_("验证码已发送,如未收到请 %(wait)s 秒后重新发送", wait=wait), retry_after=wait)
    per_account, per_ip = throttle.failure_limits()
    throttle.spend(f"{channel.method}code", user.account, client.ip, per_account, per_ip, what=channel.what)
    code, salt = f"{secrets.randbelow(10**6):06d}", secrets.token_hex(8)
    MailedCode.delete().where(_of(session, channel, purpose)).execute()
    row = MailedCode.create(
        user=user,
        session=session,
        channel=channel.method,
        purpose=purpose,
        address=crypto.encrypt(address),
        code_hash=f"{salt}:{_digest(salt, code)}",
        expires_at=utcnow() + channel.ttl,
    )
    try:
        with _in_language_of(user):  # the mail or text is written in the account's language
            channel.deliver(address, code, purpose, client)
    except Exception:
        MailedCode.delete().where(MailedCode.id == row.id).execute()  # no code that nobody received
        raise
    audit.record(
        channel.sent_event,
        user=user,
        method=channel.method,
        client=client,
        detail=f"{purpose} to {channel.mask(address)}",
    )
    return row


def _in_language_of(user: User):
    return i18n.speaking(i18n.of(user))


def _of(session: LoginSession, channel: Channel, purpose: str):
    return (MailedCode.session == session) & (MailedCode.channel == channel.method) & (MailedCode.purpose == purpose)


def pending(session: LoginSession, channel: Channel, purpose: str) -> MailedCode | None:
    """The session's live, unused code for ``purpose`` (to show where it went), if any."""
    return (
        MailedCode.select()
        .where(_of(session, channel, purpose) & (MailedCode.expires_at > utcnow()))
        .order_by(MailedCode.id.desc())
        .first()
    )


def consume(session: LoginSession, channel: Channel, purpose: str, code: str) -> MailedCode | None:
    """The code row if ``code`` is the session's live code for ``purpose``; it is then used up (deleted)."""
    row = pending(session, channel, purpose)
    if row is None:
        return None
    salt, _, digest = row.code_hash.partition(":")
    if not hmac.compare_digest(digest, _digest(salt, code)):
        return None
    claimed = MailedCode.delete().where(MailedCode.id == row.id).execute()  # of parallel uses, one wins
    return row if claimed == 1 else None


def address_of(row: MailedCode) -> str:
    return crypto.decrypt(row.address)


def _digest(salt: str, code: str) -> str:
    return crypto.token_hash(f"mailed-code:{salt}:{code}")
