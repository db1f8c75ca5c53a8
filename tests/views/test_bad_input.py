"""Invariants 4 and 11: bad input gets a clear message and never a 500, and nothing is half-written."""

from __future__ import annotations

import pytest

from portal.models import Enrollment, Factor, LoginSession
from portal.services import throttle
from tests.conftest import PASSWORD
from tests.helpers import attr, text
from tests.views.support import complete_login, factor_count, location

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def garbage_for(code: str) -> list[str | None]:
    """Codes that must be refused although some "mean" the right code (invariant 4)."""
    return [
        code.translate(ARABIC_INDIC),
        code.translate(FULLWIDTH),
        code[:5] + code[5].translate(FULLWIDTH),
        code[:3] + "\u00a0" + code[3:],  # no-break space is not an ASCII space
        code[:3] + "\t" + code[3:],
        code + "0",
        code[:5],
        "12345a",
        "",
        "x" * 10_000,
        "9" * 10_000,
        None,  # field missing
    ]


@pytest.mark.app_config(THROTTLE_ACCOUNT_FAILURES=50)
def test_second_step_refuses_garbage_codes_even_when_they_mean_the_right_code(browser, user, totp_secret, clock):
    browser.login(user.account, PASSWORD)
    code = clock.next_code(totp_secret)
    garbage = garbage_for(code)
    for value in garbage:
        form = {"method": "totp"} if value is None else {"method": "totp", "code": value}
        response = browser.post("/login/verify", form)
        assert response.status_code == 400, repr(value)[:40]
        assert "请输入 6 位数字验证码" in text(response)
    assert location(browser.get("/")) == "/login/verify"  # still half-open
    assert throttle.failures("otp", user.account) == len(garbage)  # every one was a failed attempt
    assert location(browser.post("/login/verify", {"method": "totp", "code": code})) == "/"


@pytest.mark.parametrize("method", ["", "sms", "wechat", "nope", "x" * 5000])
def test_second_step_with_an_unknown_or_unbound_method(browser, user, totp_secret, clock, method):
    browser.login(user.account, PASSWORD)
    response = browser.post("/login/verify", {"method": method, "code": clock.next_code(totp_secret)})
    assert response.status_code == 400 and "该验证方式未绑定" in text(response)
    assert location(browser.get("/")) == "/login/verify"


@pytest.mark.parametrize(
    "form",
    [
        {"account": "a\x00b@mail.xamd.edu.cn", "password": PASSWORD},
        {"account": "alice@mail.xamd.edu.cn", "password": "x\x00y"},
        {"account": "alice@mail.xamd.edu.cn\x00", "password": PASSWORD},
    ],
    ids=["nul-in-account", "nul-in-password", "nul-after-account"],
)
def test_nul_bytes_are_refused_not_a_500(browser, user, form):
    """PostgreSQL refuses NUL in text; such input must be a clear 400, on every database."""
    response = browser.post("/login", form)
    assert response.status_code == 400 and "请求包含无效字符" in text(response)
    assert browser.cookie("portal_sid") is None


def test_nul_bytes_in_other_fields_and_the_query(browser, user, totp_secret, clock):
    browser.login(user.account, PASSWORD)
    response = browser.post("/login/verify", {"method": "to\x00tp", "code": clock.next_code(totp_secret)})
    assert response.status_code == 400 and "请求包含无效字符" in text(response)
    assert browser.get("/login/verify?method=%00").status_code == 400
    response = browser.post("/login/verify", {"method": "totp", "code": "12\x003456"}, htmx=True)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#flash"


@pytest.mark.parametrize(
    "account,password",
    [
        ("x" * 10_000, PASSWORD),
        ("alice@mail.xamd.edu.cn", "p" * 10_000),
        ("ＡＬＩＣＥ@mail.xamd.edu.cn", PASSWORD),
        ("\u202ealice@mail.xamd.edu.cn", PASSWORD),
        ("", ""),
    ],
)
def test_odd_login_input_is_a_failed_login(browser, user, account, password):
    response = browser.login(account, password)
    assert response.status_code == 401 and "账号或密码错误" in text(response)


@pytest.mark.parametrize(
    "enrollment", ["", "abc", "-1", "1e3", "١", "0x10", "99999999999999999999999", "2147483648", " 1", "1" * 5000]
)
def test_bind_with_a_bogus_enrollment_id(browser, totp_user, clock, enrollment):
    browser.login(totp_user.account, PASSWORD)
    dialog = browser.get("/settings/security/2fa/totp/bind", htmx=True)
    assert attr(dialog, 'name="enrollment" value')
    response = browser.post("/settings/security/2fa/totp/bind", {"enrollment": enrollment, "code": "123456"}, htmx=True)
    assert response.status_code == 200 and "绑定已过期" in text(response)
    assert factor_count(totp_user) == 0 and Enrollment.select().count() == 1


def test_bind_with_missing_fields(browser, totp_user):
    browser.login(totp_user.account, PASSWORD)
    dialog = browser.get("/settings/security/2fa/totp/bind", htmx=True)
    response = browser.post("/settings/security/2fa/totp/bind", {}, htmx=True)
    assert response.status_code == 200 and "绑定已过期" in text(response)
    enrollment = attr(dialog, 'name="enrollment" value')
    for code in (None, "", "١٢٣٤٥٦", "x" * 10_000):
        form = {"enrollment": enrollment} if code is None else {"enrollment": enrollment, "code": code}
        response = browser.post("/settings/security/2fa/totp/bind", form, htmx=True)
        assert response.status_code == 200 and "请输入 6 位数字验证码" in text(response)
        assert "data-otpauth-uri" in text(response)  # the same dialog, to try again
    assert factor_count(totp_user) == 0


@pytest.mark.app_config(THROTTLE_ACCOUNT_FAILURES=50)
def test_unbind_and_change_refuse_garbage_codes(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    code = clock.next_code(totp_secret)
    for action in ("unbind", "change"):
        for value in garbage_for(code)[:4] + ["x" * 10_000, None]:
            form = {"via": "totp"} if value is None else {"via": "totp", "code": value}
            response = browser.post(f"/settings/security/2fa/totp/{action}", form, htmx=True)
            assert response.status_code == 200 and "请输入 6 位数字验证码" in text(response)
        response = browser.post(f"/settings/security/2fa/totp/{action}", {"via": "nope", "code": code}, htmx=True)
        assert response.status_code == 200 and "未绑定" in text(response)
    assert factor_count(user) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/settings/security/2fa/nope/unbind",
        "/settings/security/2fa/totp/explode",
        "/settings/security/2fa/TOTP/change",
        "/settings/security/2fa/%00/unbind",
    ],
)
def test_unknown_method_or_action_in_the_url_is_a_404_page(browser, user, path):
    browser.login(user.account, PASSWORD)
    for response in (browser.get(path), browser.post(path, {"code": "123456"})):
        assert response.status_code == 404 and "页面不存在" in text(response) and "<html" in text(response)
    response = browser.get(path, htmx=True)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#flash"
    assert "页面不存在" in text(response)


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/settings/security/devices/abc/revoke",
        "/settings/security/devices/-1/revoke",
        "/settings/security/devices/99999999999999999999999/revoke",
        "/login/verify/x",
        "/static/../portal/db.py",
    ],
)
def test_unknown_routes_are_a_404_page(browser, user, path):
    browser.login(user.account, PASSWORD)
    for response in (browser.get(path), browser.post(path)):
        assert response.status_code in (404, 405), path
        assert "<html" in text(response) and "出错了" in text(response)


def test_wrong_http_method_is_a_405_page(browser, user):
    browser.login(user.account, PASSWORD)
    response = browser.client.put("/settings/security/2fa")
    assert response.status_code == 405 and "不支持的请求方式" in text(response)


def test_oversize_body_is_a_413_page(browser, user, totp_secret):
    browser.login(user.account, PASSWORD)
    big = {"method": "totp", "code": "1" * (2 * 1024 * 1024)}
    response = browser.post("/login/verify", big)
    assert response.status_code == 413 and "提交的内容过大" in text(response)
    response = browser.post("/login", {"account": "a" * (2 * 1024 * 1024), "password": PASSWORD})
    assert response.status_code == 413
    response = browser.post("/login/verify", big, htmx=True)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#flash"
    assert location(browser.get("/")) == "/login/verify"


def test_junk_cookies_are_ignored(app, user):
    client = app.test_client()
    for value in ("", "x" * 4000, "%00", "\u00e9", "a;b"):
        client.set_cookie("portal_sid", value)
        client.set_cookie("portal_trust", value)
        response = client.get("/")
        assert response.status_code == 302 and location(response) == "/login"
        assert client.get("/login").status_code == 200


def test_nothing_half_written_after_refused_requests(browser, totp_user, clock):
    browser.login(totp_user.account, PASSWORD)
    browser.post("/settings/security/2fa/totp/bind", {"enrollment": "abc", "code": "x"})
    browser.post("/settings/security/2fa/totp/unbind", {"code": "123456"})
    assert Factor.select().count() == 0
    assert LoginSession.select().where(LoginSession.ended_at.is_null()).count() == 1
