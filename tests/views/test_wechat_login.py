"""The second step with 微信 (manual 二(二)2): 扫码授权 (确认授权并信任此设备 / 临时登录) or the
mini-program's 6-digit code; denials, expiry, and who may approve or poll (invariants 2, 3, 8)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.models import Ticket, TrustedDevice, utcnow
from portal.services import sessions
from portal.web.guard import SESSION_COOKIE, TRUST_COOKIE
from tests.api.support import error_code
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import location
from tests.views.wechat_support import *  # noqa: F403 -- fixtures: app_config, phone, wechat_stub
from tests.views.wechat_support import (
    PUBLIC_URL,
    VERIFY,
    expire,
    login_by_code,
    password_step,
    poll_url,
    qr_token,
    qr_url,
    query,
    redirect_target,
    status_tag,
    ticket_of,
    wx_code,
)

HTMX = pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
DENIED = "该请求已在手机上被拒绝"  # the browser is not told to change the password: it may be the intruder
EXPIRED = "二维码已过期,已为您刷新,请重新扫码。"


@pytest.fixture
def owner(user, phone) -> str:
    """alice has bound 微信; the bearer token of the WeChat user who holds it."""
    bearer = phone.login("o-owner")
    phone.bind(bearer, user)
    return bearer


@pytest.fixture
def at_second_step(browser, user, owner):
    """alice's browser after the password: /login/verify with the login QR."""
    password_step(browser, user.account)
    return browser


def login_qr(browser):
    """The second-step page with its login QR."""
    page = browser.get(VERIFY)
    assert page.status_code == 200
    return page


def assert_logged_in(response, htmx: bool) -> None:
    if htmx:
        assert response.status_code == 200 and response.headers["HX-Redirect"] == "/"
        assert "Location" not in response.headers
    else:
        assert response.status_code == 302 and location(response) == "/"


def is_half_logged_in(browser) -> bool:
    return location(browser.get("/")) == VERIFY


# --- the page ---------------------------------------------------------------------------------


def test_second_step_defaults_to_the_login_qr(at_second_step, user):
    page = login_qr(at_second_step)
    body = text(page)

    assert "<html" in body and "二次验证" in body
    assert "扫码授权" in body and "打开【微信】扫一扫" in body
    assert re.search(r'<div class="qr" data-qr-url="[^"]+"><svg', body)
    token = qr_token(page)
    assert qr_url(page) == f"{PUBLIC_URL}/wx/t/{token}"
    ticket = ticket_of(token)
    assert (ticket.method, ticket.purpose, ticket.state, ticket.user_id) == ("wechat", "login", "pending", user.id)
    assert timedelta(seconds=100) < ticket.expires_at - utcnow() <= timedelta(minutes=2)  # login ≤ 2 min
    tag = status_tag(page)
    assert f'hx-get="/login/verify/scan/{ticket.id}"' in tag and 'hx-trigger="every 2s"' in tag
    assert "确认授权并信任此设备" in body and "临时登录" in body
    switch = re.search(r"扫描二维码失效\?请选择\s*<a href=\"([^\"]+)\">验证码</a>", body)
    assert switch, body
    assert query(switch.group(1).replace("&amp;", "&")) == {"method": ["wechat"], "mode": ["code"]}


def test_code_mode_shows_the_code_form(at_second_step):
    page = at_second_step.get(f"{VERIFY}?method=wechat&mode=code")
    body = text(page)
    assert page.status_code == 200
    assert "data-qr-url" not in body and "scan-status" not in body
    assert 'name="method" value="wechat"' in body and 'name="code"' in body
    assert "邮箱安全助手" in body and "信任此设备" in body
    assert re.search(r"看不到验证码\?请选择\s*<a href=\"/login/verify\?method=wechat\">扫码授权</a>", body)


def test_code_mode_opens_no_ticket(at_second_step):
    before = Ticket.select().count()
    at_second_step.get(f"{VERIFY}?method=wechat&mode=code")
    assert Ticket.select().count() == before


def test_a_fresh_page_replaces_the_qr(at_second_step, phone, owner):
    first = qr_token(login_qr(at_second_step))
    second = qr_token(login_qr(at_second_step))
    assert first != second
    stale = phone.approve(owner, first, True)
    assert stale.status_code == 404 and error_code(stale) == "ticket_not_found"


# --- the mini-program's code --------------------------------------------------------------------


def test_code_shown_in_the_miniprogram_logs_in(browser, user, phone, owner, clock):
    password_step(browser, user.account)
    half = browser.cookie(SESSION_COOKIE)
    code = wx_code(phone, owner, user.account, clock)

    response = browser.post(VERIFY, {"method": "wechat", "code": code})

    assert location(response) == "/"
    assert browser.cookie(SESSION_COOKIE) not in (None, half)
    assert sessions.resolve(half) is None
    assert browser.get("/").status_code == 200
    assert browser.cookie(TRUST_COOKIE) is None


def test_code_with_trust_skips_the_next_second_step(browser, user, phone, owner, clock):
    login_by_code(browser, user, phone, owner, clock, trust=True)
    assert browser.cookie(TRUST_COOKIE)
    assert TrustedDevice.get().method == "wechat"
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/"


def test_wrong_and_reused_codes_are_refused(browser, new_browser, user, phone, owner, clock):
    password_step(browser, user.account)
    code = wx_code(phone, owner, user.account, clock)
    wrong = "000000" if code != "000000" else "111111"
    response = browser.post(VERIFY, {"method": "wechat", "code": wrong})
    assert response.status_code == 400 and "验证码错误" in text(response)
    assert is_half_logged_in(browser)

    assert location(browser.post(VERIFY, {"method": "wechat", "code": code})) == "/"
    other = new_browser()
    password_step(other, user.account)
    replay = other.post(VERIFY, {"method": "wechat", "code": code})
    assert replay.status_code == 400 and "该验证码已使用" in text(replay)
    assert is_half_logged_in(other)


# --- 扫码授权 ------------------------------------------------------------------------------------


@HTMX
def test_scan_approved_with_trust(browser, new_browser, user, phone, owner, htmx):
    password_step(browser, user.account)
    half = browser.cookie(SESSION_COOKIE)
    page = login_qr(browser)
    token, poll = qr_token(page), poll_url(page)

    waiting = browser.get(poll, htmx=True)
    assert waiting.status_code == 200 and "等待扫码…" in text(waiting) and "HX-Redirect" not in waiting.headers
    preview = phone.preview(owner, token)
    assert preview.status_code == 200
    assert preview.get_json()["choices"] == ["approve_trust", "approve_once", "deny"]
    scanned = browser.get(poll, htmx=True)
    assert "已扫码" in text(scanned) and 'data-state="scanned"' in status_tag(scanned)
    assert is_half_logged_in(browser)

    assert phone.approve(owner, token, trust_device=True).status_code == 200  # 确认授权并信任此设备
    done = browser.get(poll, htmx=htmx)

    assert_logged_in(done, htmx)
    full = browser.cookie(SESSION_COOKIE)
    assert full and full != half
    assert sessions.resolve(half) is None and sessions.resolve(full).stage == sessions.FULL
    assert browser.cookie(TRUST_COOKIE)
    assert "HttpOnly" in next(c for c in done.headers.getlist("Set-Cookie") if c.startswith(f"{TRUST_COOKIE}="))
    assert TrustedDevice.get().method == "wechat"
    assert "欢迎" in text(browser.get("/"))

    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/"  # this browser is trusted now
    stranger = new_browser()  # ... and no other one is
    assert location(stranger.login(user.account, PASSWORD)) == VERIFY


def test_no_js_check_before_the_phone_approved_shows_the_second_step(at_second_step, phone, owner):
    page = login_qr(at_second_step)
    early = at_second_step.get(poll_url(page))  # "我已在手机上确认" clicked too early
    assert early.status_code == 200 and "<html" in text(early) and "扫码授权" in text(early)
    assert "data-qr-url" in text(early) and 'hx-trigger="every 2s"' in status_tag(early)
    assert is_half_logged_in(at_second_step)
    assert phone.approve(owner, qr_token(early), False).status_code == 200  # the QR now shown works
    assert_logged_in(at_second_step.get(poll_url(early)), htmx=False)


@HTMX
def test_scan_approved_once(browser, user, phone, owner, htmx):
    password_step(browser, user.account)
    page = login_qr(browser)
    assert phone.approve(owner, qr_token(page), trust_device=False).status_code == 200  # 临时登录

    done = browser.get(poll_url(page), htmx=htmx)

    assert_logged_in(done, htmx)
    assert browser.cookie(TRUST_COOKIE) is None
    assert not any(c.startswith(f"{TRUST_COOKIE}=") for c in done.headers.getlist("Set-Cookie"))
    assert TrustedDevice.select().count() == 0
    assert browser.get("/").status_code == 200
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == VERIFY  # asked again next time


@HTMX
def test_scan_denied(at_second_step, phone, owner, htmx):
    page = login_qr(at_second_step)
    token = qr_token(page)
    assert phone.deny(owner, token).status_code == 200

    denied = at_second_step.get(poll_url(page), htmx=htmx)

    if htmx:
        assert denied.status_code == 200 and "Location" not in denied.headers
    else:
        assert denied.status_code == 302
    target = redirect_target(denied)
    assert target.startswith(f"{VERIFY}?")
    assert query(target)["method"] == ["wechat"] and query(target)["notice"] == ["denied"]
    assert at_second_step.cookie(TRUST_COOKIE) is None
    assert is_half_logged_in(at_second_step)

    shown = at_second_step.get(target)
    assert shown.status_code == 200 and DENIED in text(shown)
    fresh = qr_token(shown)
    assert fresh != token and ticket_of(fresh).state == "pending"  # a new QR to try again
    assert ticket_of(token).state == "denied"


@HTMX
def test_scan_expired(at_second_step, phone, owner, htmx):
    page = login_qr(at_second_step)
    token = qr_token(page)
    expire(token)

    expired = at_second_step.get(poll_url(page), htmx=htmx)

    target = redirect_target(expired)
    assert query(target)["notice"] == ["expired"] and query(target)["method"] == ["wechat"]
    assert ("HX-Redirect" in expired.headers) == htmx
    late = phone.approve(owner, token, True)
    assert late.status_code == 410 and error_code(late) == "ticket_expired"
    shown = at_second_step.get(target)
    assert EXPIRED in text(shown) and qr_token(shown) != token
    assert is_half_logged_in(at_second_step)


def test_notice_parameter_only_picks_a_fixed_message(at_second_step):
    page = at_second_step.get(f"{VERIFY}?method=wechat&notice=<script>alert(1)</script>")
    assert page.status_code == 200 and "<script>alert(1)" not in text(page)
    assert "notice error" not in text(page)


@HTMX
def test_another_wechat_user_cannot_approve(at_second_step, user, phone, owner, htmx):
    page = login_qr(at_second_step)
    token = qr_token(page)
    stranger = phone.login("o-stranger")

    for attempt in (phone.preview(stranger, token), phone.approve(stranger, token, True)):
        assert attempt.status_code == 403 and error_code(attempt) == "not_bound_to_you"
    assert ticket_of(token).state == "pending"

    still = at_second_step.get(poll_url(page), htmx=htmx)
    if htmx:
        assert "等待扫码…" in text(still) and "HX-Redirect" not in still.headers
    else:  # no JavaScript: the second step again
        assert still.status_code == 200 and "二次验证" in text(still)
    assert is_half_logged_in(at_second_step)
    assert at_second_step.cookie(TRUST_COOKIE) is None


@HTMX
def test_login_ticket_cannot_be_polled_by_other_browsers(at_second_step, new_browser, user, phone, owner, htmx):
    page = login_qr(at_second_step)
    poll = poll_url(page)
    other = new_browser()  # alice's password in another browser: its own second step
    password_step(other, user.account)
    assert phone.approve(owner, qr_token(page), True).status_code == 200

    anonymous = new_browser().get(poll, htmx=htmx)
    assert location(anonymous) == "/login"
    stolen = other.get(poll, htmx=htmx)
    if htmx:
        assert stolen.status_code == 200 and stolen.headers["HX-Retarget"] == "#flash"
    else:
        assert stolen.status_code == 404
    assert "二维码不存在" in text(stolen) and "HX-Redirect" not in stolen.headers
    assert is_half_logged_in(other) and other.cookie(TRUST_COOKIE) is None

    assert_logged_in(at_second_step.get(poll, htmx=htmx), htmx)  # its own browser still can


@HTMX
def test_consumed_ticket_logs_in_no_second_browser(app, at_second_step, new_browser, user, phone, owner, htmx):
    page = login_qr(at_second_step)
    poll, token = poll_url(page), qr_token(page)
    half = at_second_step.cookie(SESSION_COOKIE)
    assert phone.approve(owner, token, True).status_code == 200
    assert_logged_in(at_second_step.get(poll, htmx=htmx), htmx)
    assert ticket_of(token).state == "consumed"

    again = at_second_step.get(poll, htmx=htmx)  # the logged-in browser polls once more
    assert location(again) == "/" and not any(c.startswith(SESSION_COOKIE) for c in again.headers.getlist("Set-Cookie"))

    replayed = app.test_client()  # the cookie the browser had before the second step
    replayed.set_cookie(SESSION_COOKIE, half)
    assert location(replayed.get(poll)) == "/login"
    second = new_browser()
    password_step(second, user.account)
    response = second.get(poll, htmx=htmx)
    assert "二维码不存在" in text(response) and "HX-Redirect" not in response.headers
    assert is_half_logged_in(second) and second.cookie(TRUST_COOKIE) is None
    reapproved = phone.approve(owner, token, True)
    assert reapproved.status_code in (409, 410) and error_code(reapproved) in ("ticket_used", "ticket_expired")
    assert TrustedDevice.select().count() == 1


def test_logout_from_the_second_step_kills_the_qr(at_second_step, phone, owner):
    page = login_qr(at_second_step)
    at_second_step.post("/logout")
    response = phone.approve(owner, qr_token(page), True)
    assert response.status_code == 409 and error_code(response) == "session_ended"


def test_password_step_alone_shows_no_qr_to_users_without_wechat(browser, user, totp_secret):
    password_step(browser, user.account)
    page = login_qr(browser)
    assert "data-qr-url" not in text(page) and 'name="method" value="totp"' in text(page)
    assert Ticket.select().count() == 0
    assert browser.get(f"{VERIFY}/scan/1").status_code == 404


def test_switching_method_lists_the_other_bound_one(at_second_step, user, totp_secret):
    page = login_qr(at_second_step)
    body = text(page)
    assert "更换验证方式" in body and 'href="/login/verify?method=totp"' in body
    other = at_second_step.get(f"{VERIFY}?method=totp")
    assert 'name="method" value="totp"' in text(other) and "data-qr-url" not in text(other)
    assert 'href="/login/verify?method=wechat"' in text(other)


def test_no_simulator_link_unless_in_development(at_second_step):
    assert "模拟器" not in text(login_qr(at_second_step))


@pytest.mark.app_config(DEV_SIMULATORS=True)
def test_login_qr_links_to_the_simulator_in_development(at_second_step):
    page = login_qr(at_second_step)
    link = re.search(r'<a href="(/dev/miniprogram\?scan=[^"]+)"[^>]*>在小程序模拟器中打开</a>', text(page))
    assert link and qr_token(page) in link.group(1)
