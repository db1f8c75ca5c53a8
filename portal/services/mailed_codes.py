"""备用邮箱 codes: six digits mailed on request, usable once, by the browser session that asked.

A new code replaces the session's previous one for the same purpose. Sending is capped per account
and IP (``throttle.spend``: as many mails per window as failures are allowed) and needs a pause
between two mails; wrong codes are throttled where they are checked (factors.verify).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import current_app

from portal import crypto
from portal.models import LoginSession, MailedCode, User, utcnow
from portal.services import audit, mailer, throttle
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import Throttled

CODE_TTL = timedelta(minutes=10)
RESEND_AFTER = timedelta(seconds=60)
PURPOSES = {"bind": "绑定备用邮箱", "verify": "二次验证"}


def send(session: LoginSession, user: User, purpose: str, address: str, client: Client) -> MailedCode:
    """Mail a fresh code to ``address``; the session's older code for ``purpose`` stops working."""
    last = pending(session, purpose)
    if last is not None and last.created_at > utcnow() - RESEND_AFTER:
        wait = int((last.created_at + RESEND_AFTER - utcnow()).total_seconds()) + 1
        raise Throttled(f"验证码已发送,如未收到请 {wait} 秒后重新发送", retry_after=wait)
    per_account, per_ip = (
        int(current_app.config["THROTTLE_ACCOUNT_FAILURES"]),
        int(current_app.config["THROTTLE_IP_FAILURES"]),
    )
    throttle.spend("mailcode", user.account, client.ip, per_account, per_ip, what="发送验证码邮件")
    code, salt = f"{secrets.randbelow(10**6):06d}", secrets.token_hex(8)
    MailedCode.delete().where((MailedCode.session == session) & (MailedCode.purpose == purpose)).execute()
    row = MailedCode.create(
        user=user,
        session=session,
        purpose=purpose,
        address=crypto.encrypt(address),
        code_hash=f"{salt}:{_digest(salt, code)}",
        expires_at=utcnow() + CODE_TTL,
    )
    try:
        mailer.send(address, _subject(), _body(code, purpose, client))
    except Exception:
        MailedCode.delete().where(MailedCode.id == row.id).execute()  # no code that nobody received
        raise
    audit.record("mail_code_sent", user=user, method="email", client=client, detail=f"{purpose} to {mask(address)}")
    return row


def pending(session: LoginSession, purpose: str) -> MailedCode | None:
    """The session's live, unused code for ``purpose`` (to show where it went), if any."""
    return (
        MailedCode.select()
        .where((MailedCode.session == session) & (MailedCode.purpose == purpose) & (MailedCode.expires_at > utcnow()))
        .order_by(MailedCode.id.desc())
        .first()
    )


def consume(session: LoginSession, purpose: str, code: str) -> MailedCode | None:
    """The code row if ``code`` is the session's live code for ``purpose``; it is then used up (deleted)."""
    row = pending(session, purpose)
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


def _subject() -> str:
    return f"【{current_app.config['ORG_NAME']}】二次验证验证码"


def _body(code: str, purpose: str, client: Client) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    return (
        f"您的验证码是 {code},{minutes} 分钟内有效,用于{PURPOSES[purpose]}。\n\n"
        f"请求来自 IP {client.ip or '未知'}。如非本人操作,请勿将验证码告诉任何人,并尽快修改邮箱密码。\n\n"
        f"{current_app.config['ORG_NAME']}\n"
    )
