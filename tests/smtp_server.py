"""A real SMTP server for the tests: aiosmtpd on loopback, keeping every delivered message.

nginx's SMTP proxy relays to it (integration), and the portal mails 备用邮箱 codes to it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from tests.conftest import skip_or_fail
from tests.helpers import LOOPBACK, free_port


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 -- aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=policy.default)
        delivery = Delivery(envelope.mail_from, list(envelope.rcpt_tos), message)
        with self.lock:
            self.deliveries.append(delivery)
        return "250 Message accepted for delivery"

    def with_subject(self, subject: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.message["Subject"] == subject]

    def to(self, address: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if address in d.rcpt_tos]


class SmtpBackend:
    """aiosmtpd's Controller (its own thread and event loop) on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            skip_or_fail("aiosmtpd not installed in the venv (requirements-dev.txt)")
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname=LOOPBACK, port=self.port, ready_timeout=15)

    def start(self) -> SmtpBackend:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        """What PORTAL_SMTP_URL names to send through this server."""
        return f"smtp://{LOOPBACK}:{self.port}"

    def code_for(self, address: str, *, after: int = 0, timeout: float = 10.0) -> str:
        """The 6-digit code in the newest mail to ``address`` beyond the first ``after`` ones (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.handler.to(address)
            if len(mails) > after:
                return re.search(r"验证码是 (\d{6})", mails[-1].message.get_content()).group(1)
            time.sleep(0.05)
        raise AssertionError(f"no code mailed to {address} within {timeout} s")
