"""邮箱安全 App in a real browser: the App itself (/app, the PWA) on a phone-sized Chromium is the phone.

The portal runs with PUBLIC_URL set to its own address. Each phone is a browser context of its own (its
own IndexedDB); the App keeps a non-extractable WebCrypto key per account there and signs every request
to /api/app/v1. It enrolls from the bind QR's URL (``data-qr-url``) opened on the phone, or pasted into
扫一扫, after 确定绑定; it shows the 6-digit codes, and polls the pending push challenges every 3 s while
open (headless Chromium has no push service; the push path is tested against a stub push service in
tests/api and, for the service worker, in test_app_pwa.py). The web dialogs and the login second step poll
every 2 s, so every wait for one side to notice the other is bounded by TIMEOUT_MS.

Issue #4: bind the App, log in by push with number matching, by QR, by code, unbind. Issue #13: the same with
the installable App at /app; the development simulator (/dev/app) is that App with ?scan=.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.services import useragent
from tests.e2e.app_phone import (  # noqa: F401 -- new_phone is a fixture
    CODE,
    POLLED_MS,
    PUSH_TEXT,
    SCREENSHOTS,
    app_row,
    bind_app,
    challenge_path,
    expect_app_bound,
    expect_app_unbound,
    expect_polled_dialog,
    expect_polled_welcome,
    expect_push,
    expect_waiting,
    new_phone,
    qr_url,
    set_up_bound_account,
    simulator_link,
)
from tests.e2e.pages import (
    assert_same_document,
    dialog,
    expect_modal_dialog,
    expect_welcome,
    finish_dialog,
    log_in,
    log_out,
    mark_document,
    open_twofa_settings,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server(app_live_server):
    """Every page of this module (``page``, ``new_page``) is served by the portal with the simulator."""
    return app_live_server


# --- tests -----------------------------------------------------------------------------------


def test_bind_the_app_from_the_bind_qr(live_server, page, new_phone):
    """绑定 → QR dialog → the phone opens the QR's link in the App → 确定绑定 → 绑定成功 by polling → 已绑定."""
    account = live_server.create_user("appalice@mail.xamd.edu.cn", totp=False, name="Alice")
    log_in(page, account)
    expect_welcome(page)  # no factor yet: the password is enough
    open_twofa_settings(page)
    phone = new_phone()

    bind_app(page, phone, account, live_server.url, screenshot="e2e-app-bind-dialog.png")

    code = phone.code_for(account)
    expect(phone.account_row(account)).to_contain_text(re.compile(r"\d+s"))
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-phone-codes.png"))
    assert CODE.match(code)

    # The dialog is gone and nothing keeps polling: the row stays as it is after a reload too.
    expect(dialog(page)).to_have_count(0)
    page.reload()
    expect_app_bound(page)


def test_bind_from_the_simulator_link(live_server, page, new_phone):
    """The dialog's 在App模拟器中打开 link: the App as the simulator (/dev/app?scan=) asks 确定绑定 at once."""
    account = live_server.create_user("appbea@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    phone = new_phone()
    app_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "二次验证设置")
    href = simulator_link(box, qr_url(box, live_server.url, "enroll"))

    phone.page.goto(href)
    phone.page.get_by_role("button", name="确定绑定").click()
    phone.expect_result(f"绑定成功:{account}")
    phone.expect_listed(account)
    expect_polled_dialog(page, "绑定成功")
    finish_dialog(page, "绑定成功")
    expect_app_bound(page, "Simulator (Browser)")


def test_push_login_with_number_matching(live_server, page, new_phone):
    """Password → 打开 App 确认授权 with a number → the App picks it → 欢迎页 by itself."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "appbob@mail.xamd.edu.cn")

    log_in(page, account)
    number = expect_push(page)
    page.screenshot(path=str(SCREENSHOTS / "e2e-app-login-push.png"))

    card = phone.challenge(account, "登录")
    choices = phone.choices(card)
    assert number in choices and len(set(choices)) == 3
    browser, system = useragent.describe(page.evaluate("navigator.userAgent"))
    for term, value in (("帐号", account), ("浏览器", browser), ("系统", system), ("IP", "127.0.0.1")):
        expect(card.locator("dt", has_text=term).locator("+ dd")).to_have_text(value)
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-challenge.png"))

    phone.pick(card, number, "已确认授权")
    expect_polled_welcome(page)
    phone.expect_no_challenge()

    # 临时: the next login asks again.
    log_out(page)
    log_in(page, account)
    expect_push(page)


def test_wrong_number_cancels_and_pushes_again(live_server, page, new_phone, problems):
    """Picking another number: the request is cancelled, the web says so, and one click sends a new push."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "appcarol@mail.xamd.edu.cn")

    log_in(page, account)
    number = expect_push(page)
    card = phone.challenge(account, "登录")
    wrong = next(n for n in phone.choices(card) if n != number)
    problems.expect_status(challenge_path(card, "approve"), 409)  # the App's console logs the refused pick
    phone.pick(card, wrong, "数字不匹配,本次请求已取消;请核对网页上显示的数字")

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("App 中选择的数字与网页显示的不一致", timeout=POLLED_MS)
    expect(page).to_have_url(re.compile(r"/login/verify\?method=app&notice=denied&reason=number_mismatch$"))
    expect(page.locator("[data-match-number]")).to_have_count(0)  # nothing is sent without the user's click
    page.get_by_role("button", name="发送授权请求").click()
    second = expect_push(page)  # a new push, with its own number
    page.screenshot(path=str(SCREENSHOTS / "e2e-app-login-mismatch.png"))

    card = phone.challenge(account, "登录")
    assert second in phone.choices(card)
    phone.pick(card, second, "已确认授权")
    expect_polled_welcome(page)


def test_not_me_cancels_the_login(live_server, page, new_phone):
    """不是本人操作: the browser is told its request was refused (it may be the intruder's); no login."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "appdave@mail.xamd.edu.cn")

    log_in(page, account)
    expect_push(page)
    phone.deny(phone.challenge(account, "登录"))

    expect(page.get_by_role("alert")).to_contain_text("该请求已在手机上被拒绝", timeout=POLLED_MS)
    expect(page.get_by_role("alert")).not_to_contain_text("修改密码")
    expect(page).to_have_url(re.compile(r"/login/verify\?method=app&mode=code&notice=denied&reason=not_me$"))
    expect(page.locator("[data-match-number]")).to_have_count(0)  # no new push after 不是本人操作
    expect(page.get_by_placeholder("请输入验证码")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "e2e-app-login-not-me.png"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/verify"))  # still not logged in


def test_log_in_by_scanning_the_qr(live_server, page, new_phone):
    """没有收到授权信息? → 扫二维码: the App scans the login QR and approves (图 2-3-6, 2-3-7).

    确认授权并信任此设备 in the App: the next login in this browser needs the password only.
    """
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "appemma@mail.xamd.edu.cn")

    log_in(page, account)
    expect_push(page)
    page.locator("main .card").get_by_role("link", name="扫二维码").click()
    expect(page).to_have_url(re.compile(r"/login/verify\?method=app&mode=qr$"))
    card = page.locator("main .card")
    expect(card.get_by_text("打开【邮箱安全 App】扫一扫,扫码授权登录")).to_be_visible()
    url = qr_url(card, live_server.url, "t")
    simulator_link(card, url)
    expect_waiting(card)
    expect(card.get_by_role("link", name="App 授权")).to_be_visible()
    expect(card.locator("[data-match-number]")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "e2e-app-login-qr.png"))

    phone.approve_qr(url, "确认授权并信任此设备")
    expect_polled_welcome(page)

    log_out(page)
    log_in(page, account)
    expect_welcome(page)  # trusted: no second step


def test_log_in_with_the_app_code(live_server, page, new_phone):
    """没有收到授权信息? → 验证码: the 6-digit code the App shows for this account (图 2-3-4, 2-3-5)."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "appfay@mail.xamd.edu.cn")

    log_in(page, account)
    expect_push(page)
    page.locator("main .card").get_by_role("link", name="验证码", exact=True).click()
    expect(page).to_have_url(re.compile(r"/login/verify\?method=app&mode=code$"))
    expect(page.get_by_text("打开【邮箱安全 App】,点击“+”选择“二次验证”,找到本账号的 6 位验证码")).to_be_visible()
    expect(page.locator(".qr")).to_have_count(0)
    expect(page.get_by_role("link", name="App 授权")).to_be_visible()
    expect(page.get_by_role("link", name="扫二维码")).to_be_visible()
    page.get_by_label("验证码").fill(phone.code_for(account))
    page.get_by_role("button", name="确定").click()
    expect_welcome(page)


def test_unbind_by_push(live_server, page, new_phone, problems):
    """解绑 → 邮箱安全 App验证 with a number → the App approves → 解绑成功 → 未绑定 (图 3-1-1 … 3-1-5)."""
    phone = new_phone()
    account = live_server.create_user("appgus@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    bind_app(page, phone, account, live_server.url, open_link=False)  # "+" → 扫一扫 in the App

    mark_document(page)
    app_row(page).get_by_role("link", name="解绑").click()
    box = expect_modal_dialog(page, "邮箱安全 App验证")
    expect(box).to_contain_text("解绑邮箱安全 App前,打开【邮箱安全 App】确认授权")
    expect(box.get_by_role("link", name="扫二维码")).to_be_visible()
    expect(box.get_by_role("link", name="验证码", exact=True)).to_be_visible()
    expect(box.get_by_role("link", name="取消")).to_be_visible()
    expect_waiting(box, push=True)
    number = int(box.locator("[data-match-number]").get_attribute("data-match-number") or "0")
    page.screenshot(path=str(SCREENSHOTS / "e2e-app-unbind-dialog.png"))

    card = phone.challenge(account, "解绑验证方式")
    assert number in phone.choices(card)
    # Once unbound, the App's next signed poll is refused (device unknown) and it drops the account.
    problems.expect_status("/api/app/v1/challenges", 401)
    phone.pick(card, number, "已确认授权")

    expect_polled_dialog(page, "解绑成功")
    finish_dialog(page, "解绑成功")
    assert_same_document(page)
    expect_app_unbound(page)

    phone.expect_not_listed(account)
    phone.expect_result(f"{account} 已在网页上解绑,已从 App 中移除")
    expect(phone.page.locator("#app-accounts")).to_contain_text("暂无帐号")

    log_out(page)
    log_in(page, account)
    expect_welcome(page)  # no factor left: the password is enough


def test_remove_in_the_app_unbinds_it_on_the_web(live_server, page, new_phone):
    """移除 in the App (after its confirmation) unbinds the App factor on the portal too, like 解绑."""
    phone = new_phone()
    account = live_server.create_user("apphal@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    bind_app(page, phone, account, live_server.url)

    row = phone.account_row(account)
    row.get_by_role("button", name="移除").click()
    confirm = phone.page.get_by_role("dialog", name="移除帐号")
    expect(confirm).to_contain_text(account)
    confirm.get_by_role("button", name="取消").click()
    phone.expect_listed(account)  # 取消 keeps it

    row.get_by_role("button", name="移除").click()
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-remove.png"))
    confirm.get_by_role("button", name="确定移除").click()
    phone.expect_result(f"已移除 {account}")
    phone.expect_not_listed(account)
    # What proved the user changed: the web sessions ended too (invariant 14); the password is enough now.
    page.reload()
    expect(page.get_by_role("heading", name="邮箱登录")).to_be_visible()
    log_in(page, account)
    expect_welcome(page)
    open_twofa_settings(page)
    expect_app_unbound(page)
