"""Outgoing mail (the codes for 备用邮箱) through the SMTP server named by PORTAL_SMTP_URL.

``smtp://host[:25]`` (plain, e.g. the local Postfix), ``smtp+starttls://host[:587]`` or
``smtps://host[:465]``, each with optional ``user:password@`` (URL-encoded). Without a URL,
development prints each mail to the log (``make run`` shows the code in the terminal); production
then does not offer 备用邮箱 at all.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr
from urllib.parse import unquote, urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l

from portal.services.errors import Unavailable

TIMEOUT = 5  # seconds for each step of the conversation with the SMTP server (connect, each reply)
PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
FAILED = _l("验证码邮件发送失败,请稍后再试;如多次失败请联系管理员")


def available() -> bool:
    """Can codes be mailed? (A configured SMTP server, or development's log.)"""
    return bool(current_app.config["SMTP_URL"]) or current_app.config["ENV"] == "development"


def send(to: str, subject: str, body: str) -> None:
    """Hand one plain-text mail to the SMTP server; Unavailable if it cannot be delivered to it."""
    message = EmailMessage()
    message["From"] = _sender()
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    url = str(current_app.config["SMTP_URL"])
    if not url:
        if current_app.config["ENV"] != "development":
            raise Unavailable(FAILED)
        current_app.logger.warning(
            "PORTAL_SMTP_URL is not set; development prints the mail instead.\nTo: %s\nSubject: %s\n\n%s",
            to,
            subject,
            body,
        )
        return
    try:
        _deliver(url, message)
    except (OSError, smtplib.SMTPException) as exc:  # refused, unreachable, timed out, TLS or auth failed
        current_app.logger.error("mail to %s not sent: %r", to, exc)
        raise Unavailable(FAILED) from exc


def _deliver(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in PORTS or not parts.hostname:
        raise smtplib.SMTPException(f"PORTAL_SMTP_URL must be smtp://, smtp+starttls:// or smtps://HOST, got {url!r}")
    port = parts.port or PORTS[parts.scheme]
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT)
    with client:
        if parts.scheme == "smtp+starttls":
            client.starttls(context=context)
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def _sender() -> str:
    """PORTAL_SMTP_FROM, or the organisation's name at noreply@<the portal's host>."""
    configured = str(current_app.config["SMTP_FROM"])
    if configured:
        return configured
    host = urlsplit(str(current_app.config["PUBLIC_URL"])).hostname or "localhost"
    return formataddr((str(current_app.config["ORG_NAME"]), f"noreply@{host}"))
