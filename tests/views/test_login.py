"""Login: /login (account + password) and /login/verify (second step), trusted devices."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from portal import crypto
from portal.models import Factor
from portal.services import throttle
from portal.web.guard import TRUST_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import REDIRECTS, complete_login, location, without_csrf

GENERIC = "账号或密码错误"
CLOCK = r"(\d\d-\d\d )?\d\d:\d\d"  # a lock's end in local time, with the date once it is past midnight (local_clock)


def test_unknown_account_and_wrong_password_look_the_same(new_browser, user):
    unknown = new_browser().login("nobody@mail.xamd.edu.cn", "Wrong-horse-1")
    wrong = new_browser().login(user.account, "Wrong-horse-1")
    assert unknown.status_code == wrong.status_code == 401
    for response in (unknown, wrong):
        assert GENERIC in text(response)
        assert "不存在" not in text(response)
    same_shape = [without_csrf(text(r)).replace(a, "ACCOUNT") for r, a in ((unknown, "nobody"), (wrong, "alice"))]
    assert same_shape[0] == same_shape[1]
    assert sorted(unknown.headers.keys()) == sorted(wrong.headers.keys())
    assert not any(c.startswith("portal_sid=") for c in unknown.headers.getlist("Set-Cookie"))


def test_a_password_the_server_cannot_check_is_not_called_wrong(browser, user, hashing_fails):
    response = browser.login(user.account, PASSWORD)
    assert response.status_code == 503
    assert "稍后再试" in text(response) and GENERIC not in text(response)
    assert f'value="{user.account}"' in text(response)  # the form is back, ready for another try
    assert not any(c.startswith("portal_sid=") for c in response.headers.getlist("Set-Cookie"))


def test_login_page_keeps_the_account_but_never_the_password(browser, user):
    response = browser.login(user.account, "Wrong-horse-1")
    body = text(response)
    assert f'value="{user.account}"' in body and "Wrong-horse-1" not in body


@pytest.mark.parametrize("typed", [" ALICE@MAIL.XAMD.EDU.CN ", "Alice@Mail.Xamd.Edu.Cn"])
def test_account_is_normalised(browser, user, typed):
    response = browser.login(typed, PASSWORD)
    assert location(response) == "/"
    assert "欢迎" in text(browser.get("/"))


def test_no_factor_user_goes_straight_to_the_welcome_page(browser, user):
    response = browser.login(user.account, PASSWORD)
    assert response.status_code in REDIRECTS and location(response) == "/"
    page = browser.get("/")
    assert page.status_code == 200
    assert "欢迎" in text(page) and "进入个人设置" in text(page)


def test_missing_fields_are_a_failed_login(browser, user):
    response = browser.post("/login", {})
    assert response.status_code == 401 and GENERIC in text(response)
    response = browser.post("/login", {"account": user.account})
    assert response.status_code == 401 and GENERIC in text(response)


@pytest.mark.app_config(THROTTLE_ACCOUNT_FAILURES=3)
def test_failures_are_throttled_per_account(browser, new_browser, user):
    for _ in range(3):
        response = browser.login(user.account, "Wrong-horse-1")
        assert response.status_code == 401 and GENERIC in text(response)
    for password in ("Wrong-horse-1", PASSWORD):  # once locked, not even the right password is checked
        response = new_browser().login(user.account.upper(), password)
        assert response.status_code == 429
        assert re.search(r"尝试次数过多,请于 " + CLOCK + " 后再试", text(response)), text(response)
    assert throttle.failures("password", user.account) == 3


def test_second_step_wrong_code_then_right_code(browser, user, totp_secret, clock):
    response = browser.login(user.account, PASSWORD)
    assert location(response) == "/login/verify"
    page = browser.get("/login/verify")
    assert page.status_code == 200
    assert "打开您的身份验证器 App" in text(page) and 'name="code"' in text(page)
    assert "打开【第三方 OTP】" not in text(page)  # names an app the user does not have

    response = browser.post("/login/verify", {"method": "totp", "code": clock.wrong_code(totp_secret)})
    assert response.status_code == 400
    assert "验证码错误" in text(response)
    assert location(browser.get("/")) == "/login/verify"  # still half-open

    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    assert location(response) == "/"
    assert "欢迎" in text(browser.get("/"))


def test_code_with_ascii_spaces_is_accepted(browser, user, totp_secret, clock):
    browser.login(user.account, PASSWORD)
    code = clock.next_code(totp_secret)
    response = browser.post("/login/verify", {"method": "totp", "code": f" {code[:3]} {code[3:]} "})
    assert location(response) == "/"


def test_a_used_code_is_refused(browser, new_browser, user, totp_secret, clock):
    browser.login(user.account, PASSWORD)
    code = clock.next_code(totp_secret)
    assert location(browser.post("/login/verify", {"method": "totp", "code": code})) == "/"

    other = new_browser()
    other.login(user.account, PASSWORD)
    response = other.post("/login/verify", {"method": "totp", "code": code})
    assert response.status_code == 400
    assert "该验证码已使用" in text(response)
    assert location(other.get("/")) == "/login/verify"


def test_trust_this_device_skips_the_second_step_next_time(browser, user, totp_secret, clock):
    response = complete_login(browser, user.account, totp_secret, clock, trust=True)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{TRUST_COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=2592000" in cookie
    assert "Secure" not in cookie  # PUBLIC_URL is http in tests

    browser.post("/logout")
    assert browser.cookie(TRUST_COOKIE)  # logout keeps the device trusted
    response = browser.login(user.account, PASSWORD)
    assert location(response) == "/"
    assert browser.get("/").status_code == 200


def test_without_trust_the_next_login_asks_again(browser, user, totp_secret, clock):
    response = complete_login(browser, user.account, totp_secret, clock)
    assert not any(c.startswith(f"{TRUST_COOKIE}=") for c in response.headers.getlist("Set-Cookie"))
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"


def test_trust_cookie_of_another_user_does_not_help(browser, user, totp_secret, clock):
    from portal.services import accounts

    complete_login(browser, user.account, totp_secret, clock, trust=True)
    browser.post("/logout")
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    Factor.create(user=bob, method="totp", secret=Factor.get(Factor.user == user).secret)
    assert location(browser.login(bob.account, PASSWORD)) == "/login/verify"


def test_switch_method_lists_only_bound_methods(browser, user, totp_secret):
    browser.login(user.account, PASSWORD)
    assert "更换验证方式" not in text(browser.get("/login/verify"))  # one method: nothing to switch to

    Factor.create(user=user, method="email", secret=crypto.encrypt("alice.backup@example.org"))
    page = text(browser.get("/login/verify"))
    assert "更换验证方式" in page
    switch = page[page.index("更换验证方式") :]
    assert "备用邮箱" in switch and "?method=email" in switch
    for label in ("邮箱安全 App", "微信", "短信"):
        assert label not in switch
    assert "发送到您的备用邮箱 a***p@example.org" in text(browser.get("/login/verify?method=email"))
    assert "打开您的身份验证器 App" in text(browser.get("/login/verify?method=wechat"))  # not bound: ignored


def test_second_step_when_the_factor_disappeared(browser, user, totp_secret):
    """A factor removed meanwhile (e.g. unbound in another browser): a clear message, not a 500."""
    browser.login(user.account, PASSWORD)
    Factor.delete().where(Factor.user == user).execute()
    page = browser.get("/login/verify")
    assert page.status_code == 200 and "没有可用的验证方式" in text(page)
    response = browser.post("/login/verify", {"method": "totp", "code": "123456"})
    assert response.status_code < 500 and "没有可用的验证方式" in text(response)
    assert location(browser.post("/logout")) == "/login"
    assert location(browser.login(user.account, PASSWORD)) == "/"


def test_logged_in_user_visiting_login_goes_home(browser, user):
    browser.login(user.account, PASSWORD)
    assert location(browser.get("/login")) == "/"
    assert location(browser.get("/login/verify")) == "/"  # nothing left to verify
    assert location(browser.post("/login/verify", {"method": "totp", "code": "123456"})) == "/"


# --- item 11 of #9: say how many tries are left, and until when a lock lasts ----------------------


def test_wrong_codes_warn_before_the_lock_and_the_lock_says_until_when(browser, user, totp_secret, clock, app):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])  # 10
    browser.login(user.account, PASSWORD)
    messages = []
    for _ in range(limit + 1):
        response = browser.post("/login/verify", {"method": "totp", "code": clock.wrong_code(totp_secret)})
        messages.append(re.search(r'role="alert">([^<]+)<', text(response)).group(1))

    assert messages[0] == "验证码错误,请重新输入"  # plenty left: no count yet
    assert messages[limit - 4] == "验证码错误,请重新输入,还可尝试 3 次"
    assert messages[limit - 2] == "验证码错误,请重新输入,还可尝试 1 次"
    assert re.fullmatch(r"验证码错误,请重新输入;已达尝试上限,请于 " + CLOCK + " 后再试", messages[limit - 1])
    assert re.fullmatch(r"尝试次数过多,请于 " + CLOCK + " 后再试", messages[limit])
    # The second step says so when it is opened again, before anything is typed.
    assert re.search(r"尝试次数过多,请于 " + CLOCK + " 后再试", text(browser.get("/login/verify")))


def test_the_lock_time_is_local_time(ctx):
    noon_utc = datetime(2026, 12, 1, 4, 0, 0)  # 12:00 in Asia/Shanghai; the 15-minute window ends 12:15
    assert throttle._lock_end(noon_utc + timedelta(minutes=3)) == "12:15"
