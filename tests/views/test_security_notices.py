"""Security notices leave through the outbox's thread, after the request (invariant 16)."""

from __future__ import annotations

import socket

import pytest

from portal.models import MailOutbox
from portal.services import app_passwords, mailer
from portal.services import outbox as mail_outbox
from portal.services.client import Client
from tests.helpers import LOOPBACK
from tests.views.support import complete_login

pytestmark = pytest.mark.app_config(PUBLIC_URL="http://localhost:8000")
TRUSTED = "【邮箱安全】您的帐号新增了信任设备(此设备登录时免二次验证)"


@pytest.fixture
def worker(app):
    """This process's sending thread (testing starts none by itself)."""
    yield mail_outbox.start(app)
    mail_outbox.stop()


def test_a_login_notice_is_sent_by_the_thread_after_the_request(app, browser, user, totp_secret, clock, outbox, worker):
    start = len(outbox.handler.deliveries)
    complete_login(browser, user.account, totp_secret, clock, trust=True)  # 信任此设备: a notice
    assert mail_outbox.wait_idle(30)
    new = outbox.handler.deliveries[start:]
    assert [d.message["Subject"] for d in new] == [TRUSTED]
    assert "http://localhost:8000/settings/security/secure" in new[0].message.get_content()
    assert MailOutbox.get().sent_at is not None


def test_the_thread_is_started_again_after_a_fork(app, worker, monkeypatch):
    monkeypatch.setattr(mail_outbox.os, "getpid", lambda: worker.pid + 1)  # as a forked child sees it
    assert not worker.alive()
    child = mail_outbox.start(app)
    assert child is not worker and child.alive()
    monkeypatch.undo()
    worker.stopping.set()
    worker.wake.set()
    worker.thread.join(10)  # the fixture stops the child


def test_a_login_is_not_delayed_by_a_dead_smtp_server(app, browser, user, totp_secret, clock, outbox, monkeypatch):
    """The thread hangs on an SMTP server that never answers; a login goes through meanwhile."""
    dead = socket.create_server((LOOPBACK, 0))  # accepts connections (the backlog), never says hello
    monkeypatch.setattr(mailer, "TIMEOUT", 120)  # the hang outlasts the login on any machine
    app.config["SMTP_URL"] = f"smtp://{LOOPBACK}:{dead.getsockname()[1]}"
    worker = mail_outbox.start(app)
    connection = None
    try:
        app_passwords.create(user, "Outlook", Client(ip="203.0.113.9"))
        worker.wake.set()
        dead.settimeout(60)
        connection, _ = dead.accept()  # the thread is now waiting for the greeting
        complete_login(browser, user.account, totp_secret, clock, trust=True)
        rows = list(MailOutbox.select().order_by(MailOutbox.id))
        assert [row.subject for row in rows][1:] == [TRUSTED]
        assert [row.sent_at for row in rows] == [None, None]
        assert rows[0].attempts == 0  # still hanging on the first mail when the login returned
    finally:
        dead.close()  # refused from now on: the thread's next tries fail at once
        if connection is not None:
            connection.close()
        mail_outbox.stop()


def test_one_worker_per_process_serves_the_newest_app(app, worker):
    from portal import create_app
    from tests.conftest import make_config

    other = create_app(make_config(str(app.config["DATABASE_URL"])))
    replacement = mail_outbox.start(other)
    assert replacement is not worker and replacement.app is other
    worker.thread.join(10)
    assert not worker.thread.is_alive()
    assert mail_outbox.start(app).app is app  # and back; the fixture stops it
