"""The mail clients of the tests: imaplib, poplib and smtplib, each answering "did the login work?".

A refused login returns False; anything else that goes wrong (a timeout, a dropped connection, an
"Internal server error" that nginx reports when the portal failed) raises, so a broken server can
never pass for a refusal.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from email.message import EmailMessage

from tests.integration.procs import HOST

TIMEOUT = 5.0  # seconds, every socket operation of a test client
BROKEN = ("internal server error", "temporary")


def _refusal(text: str | bytes) -> bool:
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if any(word in text.lower() for word in BROKEN):
        raise AssertionError(f"server failed instead of refusing: {text}")
    return False


def imap_login(port: int, user: str, password: str, *, timeout: float = TIMEOUT) -> bool:
    """LOGIN, then SELECT INBOX (served by the backend Dovecot, so the session is real)."""
    return imap_attempt(port, user, password, timeout=timeout)[0]


def imap_refusal(port: int, user: str, password: str, *, timeout: float = TIMEOUT) -> str:
    """The text of the server's NO to a LOGIN that must be refused (what the mail client shows)."""
    ok, text = imap_attempt(port, user, password, timeout=timeout)
    assert not ok, f"IMAP login of {user} was accepted"
    return text


def imap_attempt(port: int, user: str, password: str, *, timeout: float = TIMEOUT) -> tuple[bool, str]:
    imap = imaplib.IMAP4(HOST, port, timeout=timeout)
    try:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            return _refusal(str(exc)), str(exc)
        status, data = imap.select("INBOX")
        assert status == "OK", f"logged in but SELECT INBOX failed: {data!r}"
        imap.logout()
        return True, "OK"
    finally:
        if imap.state != "LOGOUT":  # refused: the server may already have closed the connection
            imap.shutdown()


def pop3_login(port: int, user: str, password: str, *, timeout: float = TIMEOUT) -> bool:
    """USER/PASS, then STAT (answered by the backend Dovecot)."""
    pop = poplib.POP3(HOST, port, timeout=timeout)
    try:
        pop.user(user)
        try:
            pop.pass_(password)
        except poplib.error_proto as exc:
            return _refusal(exc.args[0] if exc.args else b"")
        messages, _size = pop.stat()
        assert messages >= 0
        pop.quit()
        return True
    finally:
        pop.close()


def _auth_plain(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """One AUTH PLAIN: smtplib's login() would retry with LOGIN, asking the portal twice per refusal."""
    smtp.user, smtp.password = user, password
    smtp.auth("PLAIN", smtp.auth_plain)


def smtp_login(port: int, user: str, password: str, *, timeout: float = TIMEOUT) -> bool:
    """EHLO, AUTH PLAIN, then NOOP (relayed to the backend SMTP server)."""
    with smtplib.SMTP(HOST, port, local_hostname="client.test.invalid", timeout=timeout) as smtp:
        smtp.ehlo()
        try:
            _auth_plain(smtp, user, password)
        except smtplib.SMTPAuthenticationError as exc:
            return _refusal(exc.smtp_error)
        code, reply = smtp.noop()
        assert code == 250, f"logged in but NOOP failed: {code} {reply!r}"
    return True


def smtp_send(port: int, user: str, password: str, to: str, subject: str, body: str) -> None:
    """Log in and send one message (raises if the login or the delivery fails)."""
    message = EmailMessage()
    message["From"] = user
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(HOST, port, local_hostname="client.test.invalid", timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        _auth_plain(smtp, user, password)
        refused = smtp.send_message(message)
        assert not refused, f"recipients refused: {refused!r}"


def imap_xoauth2(port: int, user: str, token: str, *, timeout: float = TIMEOUT) -> bool:
    """AUTHENTICATE XOAUTH2 with ``Bearer <token>`` as Roundcube sends it, then SELECT INBOX."""
    return _imap_token_login(port, "XOAUTH2", f"user={user}\x01auth=Bearer {token}\x01\x01", b"", timeout)


def imap_oauthbearer(port: int, user: str, token: str, *, timeout: float = TIMEOUT) -> bool:
    """AUTHENTICATE OAUTHBEARER (RFC 7628) with the token, then SELECT INBOX."""
    return _imap_token_login(port, "OAUTHBEARER", f"n,a={user},\x01auth=Bearer {token}\x01\x01", b"\x01", timeout)


def _imap_token_login(port: int, mechanism: str, initial: str, after_error: bytes, timeout: float) -> bool:
    """A refused token makes Dovecot send a JSON error as a challenge; ``after_error`` ends the exchange."""
    answers = iter([initial.encode()])
    imap = imaplib.IMAP4(HOST, port, timeout=timeout)
    try:
        try:
            imap.authenticate(mechanism, lambda _challenge: next(answers, after_error))
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            return _refusal(str(exc))
        status, data = imap.select("INBOX")
        assert status == "OK", f"authenticated but SELECT INBOX failed: {data!r}"
        imap.logout()
        return True
    finally:
        if imap.state != "LOGOUT":
            imap.shutdown()
