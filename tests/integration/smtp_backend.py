"""The SMTP server behind nginx: aiosmtpd on loopback, keeping every delivered message for the tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from tests.conftest import skip_or_fail
from tests.integration.procs import HOST, free_port


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


class SmtpBackend:
    """aiosmtpd's Controller (its own thread and event loop) on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            skip_or_fail("aiosmtpd not installed in the venv (requirements-dev.txt)")
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname=HOST, port=self.port, ready_timeout=15)

    def start(self) -> SmtpBackend:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
