"""保护帐号 (#14 item 1): the "如非本人操作" link of every notice. After a fresh login it ends every other
session, trusted device and SSO token in one step and leads on to 修改密码 and 二次验证设置."""

from __future__ import annotations

from portal.models import AuditEvent, LoginSession, TrustedDevice
from tests.conftest import PASSWORD
from tests.helpers import Browser, text
from tests.views.support import complete_login, location

PAGE = "/settings/security/secure"


def test_the_link_logs_in_first_then_comes_back(browser, user, totp_secret, clock):
    response = browser.get(PAGE)
    assert location(response) == "/login"
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    finished = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    assert location(finished) == PAGE
    page = text(browser.get(PAGE))
    assert "保护帐号" in page and "退出其他所有设备" in page  # just verified: the button, no second verification


def test_it_ends_every_other_session_and_trusted_device(app, browser, user, totp_secret, clock):
    other = Browser(app.test_client())
    complete_login(other, user.account, totp_secret, clock, trust=True)
    assert TrustedDevice.select().where(TrustedDevice.user == user).count() == 1
    complete_login(browser, user.account, totp_secret, clock)

    done = text(browser.post(PAGE))
    assert "已退出其他 1 个登录" in done and "/settings/security/password" in done and "/settings/security/2fa" in done
    assert location(other.get("/settings/security/2fa")) == "/login"  # the other browser is out
    assert not TrustedDevice.select().where((TrustedDevice.user == user) & TrustedDevice.revoked_at.is_null()).exists()
    assert browser.get("/settings/security/2fa").status_code == 200  # this one stays
    assert AuditEvent.select().where(AuditEvent.event == "account_secured").count() == 1


def test_an_old_verification_must_be_renewed_first(app, browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    LoginSession.update(verified_at=None).execute()  # e.g. logged in hours ago, or on a trusted device
    asked = text(browser.get(PAGE))
    assert "安全验证" in asked and "退出其他所有设备前" in asked
    refused = browser.post(PAGE)
    assert "安全验证" in text(refused)
    assert not AuditEvent.select().where(AuditEvent.event == "account_secured").exists()


def test_the_half_logged_in_cannot_use_it(app, browser, user, totp_secret, clock):
    other = Browser(app.test_client())
    complete_login(other, user.account, totp_secret, clock)
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"  # the password alone
    assert location(browser.get(PAGE)) == "/login/verify"  # the second step first, then back here
    assert location(browser.post(PAGE)) == "/login/verify"
    assert other.get("/settings/security/2fa").status_code == 200  # nothing ended
    assert not AuditEvent.select().where(AuditEvent.event == "account_secured").exists()
