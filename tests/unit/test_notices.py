"""Security notices (DESIGN §5): derived from the audit trail, mailed from the outbox by ``drain``."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pyotp
import pytest
from flask import g

from portal import crypto, i18n
from portal.db import db
from portal.models import AuditEvent, Device, Factor, MailOutbox, utcnow
from portal.services import (
    accounts,
    app_devices,
    app_passwords,
    audit,
    factors,
    new_sign_ins,
    notices,
    outbox,
    security_keys,
    sessions,
    temporary_access,
    tickets,
    trust,
)
from portal.services.client import Client
from portal.services.errors import InvalidCode, Throttled
from portal.services.factors import binding, recovery
from portal.timezone import local
from tests.conftest import PASSWORD
from tests.helpers import LOOPBACK, free_port
from tests.support.webauthn_authenticator import SoftAuthenticator
from tests.unit.conftest import run_threads, wrong_code

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
CLIENT = Client(ip="203.0.113.9", user_agent=UA)
BACKUP = "alice.backup@example.org"
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SECURE_LINK = "http://localhost:8000/settings/security/secure"  # 保护帐号
pytestmark = pytest.mark.config(PUBLIC_URL="http://localhost:8000")  # localhost: 安全密钥 need a host name


class Mail:
    """What the SMTP server received since the test began."""

    def __init__(self, smtp_server) -> None:
        self.handler, self.start = smtp_server.handler, len(smtp_server.handler.deliveries)

    def new(self):
        with self.handler.lock:
            return self.handler.deliveries[self.start :]

    def drained(self):
        outbox.drain()
        return self.new()


@pytest.fixture
def mail(ctx, outbox) -> Mail:
    return Mail(outbox)


@pytest.fixture
def session(ctx, user):
    return sessions.resolve(sessions.start(user, sessions.FULL, CLIENT))


def bind_totp(session, user):
    return binding.commit_binding(session, user, "totp", CLIENT, False, secret=crypto.encrypt(pyotp.random_base32()))


def bind_backup_email(user):
    Factor.create(user=user, method="email", secret=crypto.encrypt(BACKUP), label="a***@example.org")


def assert_notice(deliveries, subject: str, to=("alice@mail.xamd.edu.cn",)) -> None:
    assert sorted(rcpt for d in deliveries for rcpt in d.rcpt_tos) == sorted(to)
    event = AuditEvent.select().order_by(AuditEvent.id.desc()).first()
    for delivery in deliveries:
        assert delivery.message["Subject"] == subject
        body = delivery.message.get_content()
        assert "帐号:alice@mail.xamd.edu.cn" in body
        assert "IP:203.0.113.9" in body and "浏览器:Chrome 120" in body and "系统:Windows" in body
        assert f"时间:{local(event.created_at, '%Y-%m-%d %H:%M')}" in body  # Asia/Shanghai
        assert f"如非本人操作,请立即打开 {SECURE_LINK} 保护帐号" in body


# --- one test per notice ------------------------------------------------------------------------


def test_factor_bound_goes_to_the_account_and_its_backup_address(mail, user, session):
    bind_backup_email(user)
    bind_totp(session, user)
    assert_notice(mail.drained(), "【邮箱安全】您的帐号绑定了 第三方 OTP", to=("alice@mail.xamd.edu.cn", BACKUP))


def test_an_account_that_reads_english_gets_its_notice_in_english(mail, user, session):
    """Written in the account's language, whoever's request records the event (#14 item 6)."""
    user.language = "en"
    user.save()
    with i18n.speaking("zh_CN"):  # the request around the event speaks Chinese
        bind_totp(session, user)
    [delivery] = mail.drained()
    assert delivery.message["Subject"].startswith("[Mail security] Two-step verification method bound: ")
    body = delivery.message.get_content()
    assert "Account: alice@mail.xamd.edu.cn" in body and "Browser: Chrome 120" in body
    assert "(China Standard Time)" in body
    assert f"If this wasn't you, open {SECURE_LINK} now to secure your account" in body
    assert not CJK.search(delivery.message["Subject"] + body), body


def test_without_a_choice_a_notice_speaks_the_users_own_request_not_an_admins(app, mail, user, session):
    """No stored language: the language the user reads now (their own request, or one before login);
    an admin acting on the account does not impose theirs."""
    admin = accounts.create("root@mail.xamd.edu.cn", PASSWORD, name="管理员", admin=True)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        g.user = None  # the login's own request: nobody logged in yet
        audit.record("password_changed", user=user, client=CLIENT)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        g.user = admin
        audit.record("2fa_reset", user=user, client=CLIENT)
    subjects = sorted(delivery.message["Subject"] for delivery in mail.drained())
    assert subjects == [
        "[Mail security] Your account's password was changed",
        "【邮箱安全】您的帐号的二次验证已被管理员重置",
    ]


def test_binding_the_backup_address_tells_it_too(mail, user, session):
    binding.commit_binding(session, user, "email", CLIENT, False, secret=crypto.encrypt(BACKUP))
    assert_notice(mail.drained(), "【邮箱安全】您的帐号绑定了 备用邮箱", to=("alice@mail.xamd.edu.cn", BACKUP))


def test_factor_changed(mail, user, session):
    bind_totp(session, user)
    binding.grant_change(session, "totp")
    before = len(mail.drained())
    binding.commit_binding(session, user, "totp", CLIENT, True, secret=crypto.encrypt("JBSWY3DPEHPK3PXP"))
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号修改了 第三方 OTP")


def test_factor_unbound(mail, user, session):
    bind_totp(session, user)
    before = len(mail.drained())
    binding.remove(user, "totp", CLIENT, "totp", session)
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号解绑了 第三方 OTP")


def test_app_password_created(mail, user):
    app_passwords.create(user, "Outlook", CLIENT)
    assert_notice(mail.drained(), "【邮箱安全】您的帐号创建了客户端专用密码")


def test_new_trusted_device(mail, user):
    assert trust.issue(user, CLIENT, "totp")
    assert_notice(mail.drained(), "【邮箱安全】您的帐号新增了信任设备(此设备登录时免二次验证)")


def test_recovery_code_used(mail, user, session):
    bind_totp(session, user)
    codes = recovery.generate(user, CLIENT)
    before = len(mail.drained())
    assert binding.verify(user, "totp", codes[0], CLIENT, "login") == recovery.KEY
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号使用了一个备用码登录")


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2, PUBLIC_URL="http://localhost:8000")
def test_lockout_mails_once_per_lock_however_often_it_is_hit(mail, user, session, clock):
    secret = pyotp.random_base32()
    binding.commit_binding(session, user, "totp", CLIENT, False, secret=crypto.encrypt(secret))
    wrong = wrong_code(secret, clock)
    before = len(mail.drained())
    for _ in range(2):
        with pytest.raises(InvalidCode):
            binding.verify(user, "totp", wrong, CLIENT, "login")
    for _ in range(3):
        with pytest.raises(Throttled):
            binding.verify(user, "totp", wrong, CLIENT, "login")
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号因多次验证失败被暂时锁定")


def test_admin_reset(mail, user, session):
    bind_totp(session, user)
    before = len(mail.drained())
    accounts.reset_2fa(user.account, "lost phone", client=CLIENT)
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号的二次验证已被管理员重置")


def test_not_me_in_the_app(mail, user, session):
    device = Device.create(device_id="dev-1", user=user, public_key="x" * 44)
    Factor.create(user=user, method="app", external_id="dev-1")
    push = tickets.create(session, user, "app", "login", CLIENT, channel="push")
    before = len(mail.drained())
    app_devices.deny(device, push.ticket.id, "not_me", CLIENT)
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号的一次登录请求被标记为“不是本人操作”")


def test_password_changed(mail, user):
    accounts.set_password(user.account, PASSWORD + "-new", client=CLIENT)
    assert_notice(mail.drained(), "【邮箱安全】您的帐号的密码已修改")


def test_security_key_added_and_removed(mail, user, session):
    webauthn = factors.METHODS["webauthn"]
    for name in ("Key A", "Key B"):
        purpose = "add" if name == "Key B" else "bind"
        options = security_keys.registration_options(session, user)
        form = {"credential": SoftAuthenticator().create(options, "http://localhost:8000"), "name": name}
        webauthn.bind(session, user, purpose, form, CLIENT)
    assert_notice(mail.drained()[-1:], "【邮箱安全】您的帐号添加了一个安全密钥")
    before = len(mail.drained())
    sessions.mark_verified(session, "webauthn")
    webauthn.remove_credential(session, user, security_keys.keys_of(user)[-1].id, CLIENT)
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号删除了一个安全密钥")


def test_sign_in_from_a_new_place_and_a_new_device(mail, user):
    guangdong = Client.of("113.108.81.189", UA, "another-browser")
    new_sign_ins.observe(user, Client.of("202.106.0.20", UA, "a-browser"))  # the first login: nothing to say
    assert mail.drained() == []
    new_sign_ins.observe(user, guangdong)
    deliveries = mail.drained()
    assert sorted(d.message["Subject"] for d in deliveries) == [
        "【邮箱安全】您的帐号在新的地点登录(异地登录提醒)",
        "【邮箱安全】您的帐号在新设备上登录",
    ]
    for delivery in deliveries:
        body = delivery.message.get_content()
        assert "IP:113.108.81.189" in body and "地点:广东省 深圳市" in body and "浏览器:Chrome 120" in body


def test_temporary_code_issued_and_used(mail, user, totp_secret):
    desk = accounts.set_role(accounts.create("desk@mail.xamd.edu.cn", PASSWORD).account, "helpdesk", by=None)
    code = temporary_access.issue(user, desk, "工单 #7", None, CLIENT).code
    assert_notice(mail.drained(), "【邮箱安全】网络信息化中心为您的帐号签发了一个临时访问码")
    before = len(mail.drained())
    temporary_access.sign_in(sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, CLIENT)), code, CLIENT)
    assert_notice(mail.drained()[before:], "【邮箱安全】您的帐号使用临时访问码通过了二次验证")


def test_every_notice_is_covered_here():
    covered = {"factor_bound", "factor_changed", "factor_unbound", "security_key_added", "security_key_removed"}
    covered |= {"app_password_created", "trusted_device_added", "recovery_code_used", "locked_out", "2fa_reset"}
    covered |= {"password_changed", "sign_in_new_device", "sign_in_new_place", notices.ANY}
    covered |= {"temporary_code_issued", "temporary_code_used"}
    assert {event for event, _ in notices.NOTICES} == covered


# --- what mails nothing -------------------------------------------------------------------------


def test_events_without_a_user_or_without_a_notice_mail_nothing(mail, user):
    audit.record("logout", user=user, client=CLIENT)
    audit.record("factor_bind", user=user, method="totp", outcome="fail", client=CLIENT)  # a failed bind
    audit.record("locked_out", account="nobody@mail.xamd.edu.cn", outcome="locked", detail="login:acct")
    audit.record("locked_out", user=user, outcome="locked", detail="login:ip")  # its IP, not the account
    audit.record("rate_limited", account=user.account, outcome="limited")
    assert MailOutbox.select().count() == 0
    assert mail.drained() == []


def test_a_rolled_back_event_leaves_no_mail(mail, user):
    with pytest.raises(RuntimeError), db.atomic():
        audit.record("password_changed", user=user, client=CLIENT)
        raise RuntimeError
    assert MailOutbox.select().count() == 0


def test_without_a_way_to_send_mail_nothing_is_queued(ctx, app, user):
    app.config["SMTP_URL"] = ""  # testing/production without PORTAL_SMTP_URL
    app_passwords.create(user, "Outlook", CLIENT)
    assert MailOutbox.select().count() == 0


# --- delivery -----------------------------------------------------------------------------------


def test_a_mail_is_sent_once_however_often_drained_or_enqueued(mail, user):
    app_passwords.create(user, "Outlook", CLIENT)
    notices.enqueue(AuditEvent.select().order_by(AuditEvent.id.desc()).first())  # handed in again
    assert len(mail.drained()) == 1
    assert len(mail.drained()) == 1
    row = MailOutbox.get()
    assert row.sent_at is not None and row.attempts == 0


def test_the_outbox_survives_an_smtp_outage(mail, app, user):
    app.config["SMTP_URL"] = f"smtp://{LOOPBACK}:{free_port()}"  # nothing listens there
    app_passwords.create(user, "Outlook", CLIENT)
    now = utcnow()
    assert outbox.drain(now=now) == 0
    row = MailOutbox.get()
    assert (row.attempts, row.sent_at) == (1, None)
    assert row.next_attempt_at == now + timedelta(minutes=1) and "Refused" in row.last_error
    assert outbox.drain(now=now + timedelta(minutes=1)) == 0  # still down
    assert MailOutbox.get().next_attempt_at == now + timedelta(minutes=3)  # 1, then 2 minutes later


def test_after_the_outage_the_mail_goes_out(mail, app, user, smtp_server):
    app.config["SMTP_URL"] = f"smtp://{LOOPBACK}:{free_port()}"
    app_passwords.create(user, "Outlook", CLIENT)
    now = utcnow()
    outbox.drain(now=now)
    app.config["SMTP_URL"] = smtp_server.url
    assert outbox.drain(now=now + timedelta(seconds=30)) == 0  # not due yet
    assert mail.new() == []
    assert outbox.drain(now=now + timedelta(minutes=1)) == 1
    assert len(mail.new()) == 1 and MailOutbox.get().sent_at is not None


def test_the_backoff_is_capped_and_gives_up_after_a_day(mail, app, user):
    app.config["SMTP_URL"] = f"smtp://{LOOPBACK}:{free_port()}"
    app_passwords.create(user, "Outlook", CLIENT)
    row = MailOutbox.get()
    MailOutbox.update(attempts=9).execute()
    now = utcnow()
    outbox.drain(now=now)
    assert MailOutbox.get().next_attempt_at == now + timedelta(hours=1)
    outbox.drain(now=row.created_at + timedelta(hours=24))
    row = MailOutbox.get()
    assert row.next_attempt_at is None and row.sent_at is None and row.last_error.startswith("gave up after 11")


def test_concurrent_drains_send_each_mail_once(mail, app, user):
    for index in range(6):
        app_passwords.create(user, f"client {index}", CLIENT)
    results = run_threads(app, 4, lambda _i: outbox.drain())
    assert all(status == "ok" for status, _ in results), results
    assert sum(sent for _, sent in results) == 6
    assert sorted(d.message["Subject"] for d in mail.new()) == ["【邮箱安全】您的帐号创建了客户端专用密码"] * 6
    assert MailOutbox.select().where(MailOutbox.sent_at.is_null()).count() == 0


def test_a_claimed_row_is_not_sent_by_another_drain(mail, user):
    app_passwords.create(user, "Outlook", CLIENT)
    row = MailOutbox.get()
    assert outbox._claim(row, utcnow())
    assert not outbox._claim(row, utcnow())  # the second sender read the same row: it loses
    assert outbox.drain() == 0 and mail.new() == []


def test_send_mail_once_sends_what_is_due(mail, app, user):
    app_passwords.create(user, "Outlook", CLIENT)
    results = []  # a thread: the command opens and closes its own connection, as its own process would
    thread = threading.Thread(target=lambda: results.append(app.test_cli_runner().invoke(args=["send-mail", "--once"])))
    thread.start()
    thread.join(60)
    [result] = results
    assert result.exit_code == 0, result.output
    assert "1 mail(s) sent" in result.output and len(mail.new()) == 1
