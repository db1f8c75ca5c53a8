"""Step-up (安全验证): long-lived credentials need a fresh verification by a bound factor.

生成专用密码, 全部清除 of trusted devices and binding another factor ask for one when the session's last
second-factor proof is older than PORTAL_STEP_UP_MINUTES; a session that skipped the second step on a
trusted device has none. After the verification the browser goes on to what it asked for.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from portal.models import AppPassword, LoginSession, utcnow
from portal.services import accounts, trust
from tests.api.app_support import enrolled
from tests.conftest import PASSWORD
from tests.helpers import attr, text
from tests.views.support import PAGE, complete_login, location
from tests.views.wechat_support import poll_url

APP_PASSWORDS = "/settings/security/app-passwords"
DEVICES = "/settings/security/devices"
VERIFY = "/settings/security/verify"


@pytest.fixture
def fresh_session(browser, totp_user, totp_secret, clock):
    """alice just logged in with a 第三方 OTP code (and trusts this browser)."""
    complete_login(browser, totp_user.account, totp_secret, clock, trust=True)
    return browser


@pytest.fixture
def trusted_session(new_browser, fresh_session, totp_user):
    """alice back on the trusted browser later: the password only, no second step."""
    fresh_session.post("/logout")
    assert location(fresh_session.login(totp_user.account, PASSWORD)) == "/"
    return fresh_session


def age_verification(minutes: int) -> None:
    LoginSession.update(verified_at=utcnow() - timedelta(minutes=minutes)).execute()


def asks_for_verification(response, action: str) -> bool:
    body = text(response)
    return "安全验证" in body and f'action="{VERIFY}/{action}"' in body and 'name="code"' in body


def test_a_fresh_login_creates_an_app_password_at_once(fresh_session):
    assert "专用密码生成" in text(fresh_session.get(f"{APP_PASSWORDS}/new", htmx=True))
    created = fresh_session.post(f"{APP_PASSWORDS}/new", {"name": "Foxmail"}, htmx=True)
    assert "data-app-password" in text(created)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_a_trusted_device_login_must_verify_before_an_app_password(trusted_session, totp_secret, clock, htmx):
    dialog = trusted_session.get(f"{APP_PASSWORDS}/new", htmx=htmx)
    assert asks_for_verification(dialog, "app-password")
    assert "为保护您的帐号,生成专用密码前需要再验证一次身份" in text(dialog)
    # Posting the form directly does not get around it.
    refused = trusted_session.post(f"{APP_PASSWORDS}/new", {"name": "Foxmail"}, htmx=htmx)
    assert asks_for_verification(refused, "app-password") and AppPassword.select().count() == 0

    verified = trusted_session.post(
        f"{VERIFY}/app-password", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=htmx
    )

    if htmx:  # on to the dialog it asked for, in the same slot
        assert json.loads(verified.headers["HX-Location"]) == {
            "path": f"{APP_PASSWORDS}/new",
            "target": "#dialog-slot",
            "swap": "innerHTML",
        }
    else:
        assert location(verified) == f"{APP_PASSWORDS}/new"
    created = trusted_session.post(f"{APP_PASSWORDS}/new", {"name": "Foxmail"}, htmx=htmx)
    assert "data-app-password" in text(created) and AppPassword.select().count() == 1


def test_a_wrong_code_keeps_asking_and_counts_as_a_failure(trusted_session, totp_user, totp_secret, clock):
    response = trusted_session.post(f"{VERIFY}/app-password", {"via": "totp", "code": clock.wrong_code(totp_secret)})
    assert "验证码错误" in text(response) and asks_for_verification(response, "app-password")
    assert asks_for_verification(trusted_session.get(f"{APP_PASSWORDS}/new", htmx=True), "app-password")


def test_the_verification_is_fresh_for_the_window_only(fresh_session):
    age_verification(9)
    assert "专用密码生成" in text(fresh_session.get(f"{APP_PASSWORDS}/new", htmx=True))
    age_verification(10)
    assert asks_for_verification(fresh_session.get(f"{APP_PASSWORDS}/new", htmx=True), "app-password")


@pytest.mark.app_config(STEP_UP_MINUTES=30)
def test_the_window_is_configurable(fresh_session):
    age_verification(20)
    assert "专用密码生成" in text(fresh_session.get(f"{APP_PASSWORDS}/new", htmx=True))


def test_clearing_all_trusted_devices_needs_a_fresh_verification(trusted_session, totp_user, totp_secret, clock):
    dialog = trusted_session.get(f"{DEVICES}/revoke-all", htmx=True)
    assert asks_for_verification(dialog, "trusted-devices") and "清除全部信任设备前" in text(dialog)
    refused = trusted_session.post(f"{DEVICES}/revoke-all", htmx=True)
    assert asks_for_verification(refused, "trusted-devices") and len(trust.active(totp_user)) == 1

    verified = trusted_session.post(
        f"{VERIFY}/trusted-devices", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True
    )
    assert json.loads(verified.headers["HX-Location"])["path"] == f"{DEVICES}/revoke-all"
    assert "确定移除全部 1 台信任设备" in text(trusted_session.get(f"{DEVICES}/revoke-all", htmx=True))
    done = trusted_session.post(f"{DEVICES}/revoke-all", htmx=True)
    assert "已移除 1 台信任设备" in text(done) and trust.active(totp_user) == []


def test_binding_another_factor_needs_a_fresh_verification(trusted_session, totp_user, totp_secret, clock):
    accounts.set_policy(totp_user.account, methods="totp,email")
    dialog = trusted_session.get(f"{PAGE}/app/bind", htmx=True)
    assert asks_for_verification(dialog, "bind-app") and "绑定邮箱安全 App前" in text(dialog)
    assert "data-qr-url" not in text(dialog)  # no bind QR before the verification

    verified = trusted_session.post(
        f"{VERIFY}/bind-app", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True
    )

    assert json.loads(verified.headers["HX-Location"])["path"] == f"{PAGE}/app/bind"
    assert "请打开【邮箱安全 App】扫码绑定" in text(trusted_session.get(f"{PAGE}/app/bind", htmx=True))


def test_the_first_factor_binds_without_a_verification(browser, totp_user):
    """Nothing is bound yet: there is nothing to prove (and the binding is the proof from now on)."""
    assert location(browser.login(totp_user.account, PASSWORD)) == "/"
    assert "第三方 OTP 绑定" in text(browser.get(f"{PAGE}/totp/bind", htmx=True))
    assert "专用密码生成" in text(browser.get(f"{APP_PASSWORDS}/new", htmx=True))


def test_an_unknown_action_is_404(fresh_session):
    assert fresh_session.get(f"{VERIFY}/everything").status_code == 404
    assert fresh_session.post(f"{VERIFY}/everything", {"via": "totp", "code": "123456"}).status_code == 404


def test_the_app_can_verify_by_push(app, trusted_session, totp_user):
    phone = enrolled(app.test_client(), totp_user)
    dialog = trusted_session.get(f"{VERIFY}/app-password?via=app", htmx=True)
    number = int(attr(dialog, "data-match-number"))
    (challenge,) = phone.pending()
    assert challenge["purpose"] == "verify" and number in challenge["choices"]

    assert phone.approve(challenge["id"], number).status_code == 200
    done = trusted_session.get(poll_url(dialog), htmx=True)

    assert json.loads(done.headers["HX-Location"])["path"] == f"{APP_PASSWORDS}/new"
    assert "专用密码生成" in text(trusted_session.get(f"{APP_PASSWORDS}/new", htmx=True))
