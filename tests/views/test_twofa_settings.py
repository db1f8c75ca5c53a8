"""二次验证设置 (/settings/security/2fa): the methods table, 绑定 / 解绑 / 修改 dialogs.

Every flow runs as htmx fragments (what the page's JavaScript does) and as plain forms (no JS).
"""

from __future__ import annotations

import html

import pytest

from portal.models import Enrollment
from portal.services import factors, policy
from tests.conftest import PASSWORD
from tests.helpers import attr, text
from tests.views.support import (
    BIND,
    PAGE,
    bind,
    complete_login,
    confirm,
    dialog_secret,
    dialog_tag,
    enrollment_of,
    factor_count,
    is_fragment,
    location,
    rows,
)

HINT = "若已绑定二次验证,第三方客户端必须使用[专用密码]登录"
LABELS = ["邮箱安全 App", "第三方 OTP", "备用邮箱", "微信", "短信", "动态口令", "安全密钥"]


@pytest.fixture
def logged_in(browser, totp_user):
    """A full session of a user who may bind 第三方 OTP and has bound nothing yet."""
    assert location(browser.login(totp_user.account, PASSWORD)) == "/"
    return browser


# --- the page -------------------------------------------------------------------------------


def test_full_page_lists_every_method_with_its_state(logged_in):
    response = logged_in.get(PAGE)
    body = text(response)
    assert response.status_code == 200 and "<html" in body
    assert "二次验证设置" in body and HINT in body
    assert 'aria-current="page"' in body  # the 个人设置 navigation, since this is not forced binding
    table = rows(response)
    assert list(table) == list(factors.METHODS)
    for key, label in zip(table, LABELS, strict=True):
        assert label in table[key]
    assert "未绑定" in table["totp"] and "绑定</a>" in table["totp"]
    assert "未开通" in table["email"] and "绑定</a>" not in table["email"]  # not enabled for this user
    for key in ("app", "wechat"):  # self-service: a 绑定 button
        assert "绑定</a>" in table[key]
    assert "备用码" not in text(response)  # offered once a factor is bound


def test_bound_method_offers_change_and_unbind(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    table = rows(browser.get(PAGE))
    assert "已绑定" in table["totp"]
    assert "修改</a>" in table["totp"] and "解绑</a>" in table["totp"]
    assert "/settings/security/2fa/totp/change" in table["totp"]
    assert "/settings/security/2fa/totp/unbind" in table["totp"]


def test_method_not_enabled_by_the_admin_cannot_be_bound(browser, user):
    browser.login(user.account, PASSWORD)
    table = rows(browser.get(PAGE))
    assert "未开通" in table["totp"] and "绑定</a>" not in table["totp"]
    response = browser.get(BIND, htmx=True)
    assert response.status_code == 200 and "需由管理员开通" in text(response)
    assert "data-otpauth-uri" not in text(response)


def test_htmx_refresh_of_the_methods_returns_only_the_table(logged_in):
    response = logged_in.get(PAGE, htmx=True, HX_Target="methods")
    body = text(response)
    assert response.status_code == 200 and is_fragment(response)
    assert body.lstrip().startswith('<div id="methods"')
    assert 'hx-trigger="factorsChanged from:body"' in body
    assert HINT not in body and "第三方 OTP" in body


def test_htmx_request_without_target_gets_the_content_block(logged_in):
    response = logged_in.get(PAGE, htmx=True)
    assert is_fragment(response) and HINT in text(response) and 'id="methods"' in text(response)


# --- 绑定 -------------------------------------------------------------------------------------


def test_bind_dialog_has_the_testability_hooks(logged_in, totp_user):
    response = logged_in.get(BIND, htmx=True)
    body = text(response)
    assert response.status_code == 200 and is_fragment(response)
    uri = html.unescape(attr(response, "data-otpauth-uri"))
    assert uri.startswith("otpauth://totp/") and totp_user.account in html.unescape(uri.replace("%40", "@"))
    assert html.unescape(attr(response, "data-qr-url")) == uri
    secret = dialog_secret(response)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    assert len(secret) >= 16 and grouped in body
    assert "<svg" in body
    assert " open" not in dialog_tag(response)  # htmx: app.js opens it as a modal


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_bind_wrong_code_then_right_code(logged_in, totp_user, clock, htmx):
    dialog = logged_in.get(BIND, htmx=htmx)
    assert is_fragment(dialog) == htmx
    secret = dialog_secret(dialog)

    wrong = confirm(logged_in, dialog, clock.wrong_code(secret), htmx=htmx)
    assert wrong.status_code == 200 and is_fragment(wrong) == htmx
    assert "验证码错误" in text(wrong)
    assert dialog_secret(wrong) == secret  # the same dialog again: the QR still matches the app
    assert enrollment_of(wrong) == enrollment_of(dialog)
    assert "HX-Trigger" not in wrong.headers
    assert factor_count(totp_user) == 0

    done = confirm(logged_in, dialog, clock.next_code(secret), htmx=htmx)
    assert done.status_code == 200 and is_fragment(done) == htmx
    assert "绑定成功" in text(done)
    assert factor_count(totp_user) == 1
    if htmx:
        assert done.headers["HX-Trigger"] == "factorsChanged"
    else:
        assert " open" in dialog_tag(done)
        assert "已绑定" in rows(done)["totp"]  # the no-JS page shows the new state right away
    assert Enrollment.select().count() == 0


def test_bound_secret_is_the_one_asked_at_the_next_login(logged_in, new_browser, totp_user, clock):
    secret = bind(logged_in, clock)
    complete_login(new_browser(), totp_user.account, secret, clock)


def test_binding_twice_is_refused(logged_in, totp_user, clock):
    bind(logged_in, clock)
    response = logged_in.get(BIND, htmx=True)
    assert response.status_code == 200 and "已绑定" in text(response) and "data-otpauth-uri" not in text(response)
    assert factor_count(totp_user) == 1


def test_an_enrollment_of_another_session_cannot_be_confirmed(logged_in, new_browser, totp_user, clock):
    dialog = logged_in.get(BIND, htmx=True)
    other = new_browser()
    other.login(totp_user.account, PASSWORD)
    other.get(PAGE)
    response = confirm(other, dialog, clock.next_code(dialog_secret(dialog)), htmx=False)
    assert response.status_code == 200 and "绑定已过期" in text(response)
    assert factor_count(totp_user) == 0


# --- 解绑 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_unbind_needs_a_code(browser, new_browser, user, totp_secret, clock, htmx):
    complete_login(browser, user.account, totp_secret, clock)
    url = f"{PAGE}/totp/unbind"
    dialog = browser.get(url, htmx=htmx)
    assert dialog.status_code == 200 and is_fragment(dialog) == htmx
    assert "解绑第三方 OTP前" in text(dialog) and 'name="code"' in text(dialog)

    wrong = browser.post(url, {"via": "totp", "code": clock.wrong_code(totp_secret)}, htmx=htmx)
    assert wrong.status_code == 200 and "验证码错误" in text(wrong) and 'name="code"' in text(wrong)
    assert factor_count(user) == 1

    done = browser.post(url, {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=htmx)
    assert done.status_code == 200 and "解绑成功" in text(done)
    if htmx:
        assert done.headers["HX-Trigger"] == "factorsChanged"
    else:
        assert "未绑定" in rows(done)["totp"] or "未开通" in rows(done)["totp"]
    assert factor_count(user) == 0
    assert location(new_browser().login(user.account, PASSWORD)) == "/"  # no second step any more


def test_unbind_of_an_unbound_method(browser, user):
    browser.login(user.account, PASSWORD)
    for action in ("unbind", "change"):
        response = browser.get(f"{PAGE}/totp/{action}", htmx=True)
        assert response.status_code == 200 and "该验证方式未绑定" in text(response)
        response = browser.post(f"{PAGE}/totp/{action}", {"code": "123456"}, htmx=True)
        assert response.status_code == 200 and "该验证方式未绑定" in text(response)


def test_forced_user_cannot_unbind_the_only_factor(browser, user, totp_secret, clock):
    policy.set_value("force_2fa", "all")
    complete_login(browser, user.account, totp_secret, clock)
    response = browser.post(f"{PAGE}/totp/unbind", {"code": clock.next_code(totp_secret)}, htmx=True)
    assert response.status_code == 200 and "不能解绑唯一的验证方式" in text(response)
    assert factor_count(user) == 1


# --- 修改 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_change_keeps_the_old_factor_until_the_new_one_is_confirmed(
    browser, new_browser, totp_user, totp_secret, clock, htmx
):
    old = totp_secret
    complete_login(browser, totp_user.account, old, clock)
    url = f"{PAGE}/totp/change"
    dialog = browser.get(url, htmx=htmx)
    assert "修改第三方 OTP前" in text(dialog)

    wrong = browser.post(url, {"via": "totp", "code": clock.wrong_code(old)}, htmx=htmx)
    assert "验证码错误" in text(wrong) and "data-otpauth-uri" not in text(wrong)

    rebind = browser.post(url, {"via": "totp", "code": clock.next_code(old)}, htmx=htmx)
    assert rebind.status_code == 200 and is_fragment(rebind) == htmx
    assert "修改第三方 OTP:绑定新的验证器" in text(rebind)
    new = dialog_secret(rebind)
    assert new != old

    # abandoned so far: the old authenticator still logs in
    complete_login(new_browser(), totp_user.account, old, clock)

    done = confirm(browser, rebind, clock.next_code(new), htmx=htmx)
    assert "绑定成功" in text(done)
    assert factor_count(totp_user) == 1

    late = new_browser()
    late.login(totp_user.account, PASSWORD)
    response = late.post("/login/verify", {"method": "totp", "code": clock.next_code(old)})
    assert response.status_code == 400 and "验证码错误" in text(response)
    complete_login(new_browser(), totp_user.account, new, clock)


def test_change_grant_is_used_once(browser, totp_user, totp_secret, clock):
    complete_login(browser, totp_user.account, totp_secret, clock)
    rebind = browser.post(f"{PAGE}/totp/change", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True)
    new = bind(browser, clock, dialog=rebind)
    assert new != totp_secret
    again = browser.get(BIND, htmx=True)  # no fresh verification: a plain bind, refused as already bound
    assert "已绑定" in text(again) and "data-otpauth-uri" not in text(again)
