"""Forced binding (manual 2-2): after the password, a listed user or an admin must bind before entering."""

from __future__ import annotations

import pytest

from portal.models import Factor
from portal.services import accounts, policy
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import BIND, PAGE, confirm, dialog_secret, location


@pytest.fixture
def forced(browser, user):
    """A user listed for forced binding (force_2fa=listed), 第三方 OTP enabled, after the password."""
    policy.set_value("force_2fa", "listed")
    policy.set_value("enabled_methods", "app,wechat,totp")
    accounts.set_policy(user.account, force=True)
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    return user


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_forced_binding_ends_in_a_full_session(app, browser, forced, clock, htmx):
    page = browser.get(PAGE)
    body = text(page)
    assert "根据管理员要求,您的帐号必须先绑定二次验证" in body
    assert "信任设备</a>" not in body  # no way out of the binding pages
    half = browser.cookie(SESSION_COOKIE)

    dialog = browser.get(BIND, htmx=htmx)
    secret = dialog_secret(dialog)
    done = confirm(browser, dialog, clock.next_code(secret), htmx=htmx)
    assert "绑定成功" in text(done) and "进入邮箱" in text(done)
    full = browser.cookie(SESSION_COOKIE)
    assert full and full != half  # the session became full under a new id

    assert browser.get("/").status_code == 200
    assert "根据管理员要求" not in text(browser.get(PAGE))
    stale = app.test_client()
    stale.set_cookie(SESSION_COOKIE, half)
    assert location(stale.get("/")) == "/login"


def test_forced_admin_must_bind_too(browser, user):
    admin = accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)
    assert location(browser.login(admin.account, PASSWORD)) == PAGE
    assert "根据管理员要求" in text(browser.get(PAGE))
    assert "data-otpauth-uri" in text(browser.get(BIND, htmx=True))  # 第三方 OTP is always offered to admins


def test_forced_binding_wrong_code_keeps_the_session_binding(browser, forced, clock):
    dialog = browser.get(BIND, htmx=True)
    response = confirm(browser, dialog, clock.wrong_code(dialog_secret(dialog)), htmx=False)
    assert response.status_code == 200 and "验证码错误" in text(response)
    assert location(browser.get("/")) == PAGE
    assert Factor.select().count() == 0
