"""微信 in a real browser, with the 邮箱安全助手 mini-program simulator (/dev/miniprogram) as the phone.

The portal runs with DEV_SIMULATORS and calls the local WeChat API stub over HTTP. Each phone is a
page in its own browser context (its own cookies and storage: another phone). A phone logs in with
an openid (wx.login() on the stub, then the mini-program API), scans a QR by pasting the URL the
web QR encodes (``data-qr-url``) into 扫一扫, and decides. The web dialogs and the login second step
poll every 2 s, so every wait for the web to notice the phone is bounded by TIMEOUT_MS.

Issue: bind WeChat via the simulator, log out, log in by scan with 确认授权并信任此设备 → the next
login skips the second step; with 临时登录 it asks again; unbind via WeChat.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from portal.services import useragent
from tests.e2e.conftest import TIMEOUT_MS
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

SCREENSHOTS = Path("/tmp")
FIRST_WECHAT = "e2e-wechat-user-1"
SECOND_WECHAT = "e2e-wechat-user-2"
PHONE_SCREEN = {"width": 414, "height": 860}
CODE = re.compile(r"^\d{6}$")
POLLED_MS = TIMEOUT_MS  # what the web shows after the phone decided: within a few 2 s polls


@pytest.fixture
def live_server(wechat_live_server):
    """Every page of this module (``page``, ``new_page``) is served by the portal with the simulator."""
    return wechat_live_server


class Phone:
    """The mini-program simulator in its own browser context: one WeChat user's phone."""

    def __init__(self, page: Page, openid: str):
        self.page = page
        self.openid = openid

    # sign-in and the account list (图 2-4-3)

    def open(self, path: str = "/dev/miniprogram") -> None:
        self.page.goto(path)
        expect(self.page.locator(".phone-bar")).to_contain_text("邮箱安全助手")
        # Before wx.login() only the sign-in is shown; the account list and 扫一扫 come after it.
        expect(self.page.locator("#wx-accounts-section")).to_be_hidden()
        expect(self.page.locator("#wx-scan-section")).to_be_hidden()

    def log_in(self) -> None:
        self.page.get_by_label("模拟的微信用户 (openid)").fill(self.openid)
        self.page.get_by_role("button", name="登录小程序").click()
        expect(self.page.locator("#wx-status")).to_have_text(f"已登录:{self.openid}")
        expect(self.page.get_by_role("heading", name="我的邮箱")).to_be_visible()
        expect(self.page.get_by_role("heading", name="扫一扫")).to_be_visible()

    def account_row(self, account: str) -> Locator:
        return self.page.locator("#wx-accounts li.code-row").filter(has_text=account)

    def code_for(self, account: str) -> str:
        """The 6-digit code the list shows for ``account`` (what a user reads or copies)."""
        row = self.account_row(account)
        expect(row).to_have_count(1)
        code = row.locator("[data-code]").inner_text().strip()
        assert CODE.match(code), code
        return code

    def refresh(self) -> None:
        """Pull to refresh: the list is read again from the server."""
        self.page.get_by_role("button", name="刷新").click()

    def expect_listed(self, account: str) -> None:
        row = self.account_row(account)
        expect(row).to_have_count(1)
        expect(row.locator("[data-code]")).to_have_text(CODE)
        expect(row.get_by_role("button", name="复制")).to_be_visible()

    def expect_not_listed(self, account: str) -> None:
        expect(self.account_row(account)).to_have_count(0)

    # 扫一扫 and the decision (图 2-5-3, 图 3-3-3)

    def scan(self, url: str, title: str) -> Locator:
        """Paste a web QR's URL into 扫一扫 and scan; the ticket screen titled ``title`` opens."""
        self.page.get_by_label("二维码内容(网页二维码的链接)").fill(url)
        self.page.get_by_role("button", name="扫码").click()
        return self.expect_ticket(title)

    def expect_ticket(self, title: str) -> Locator:
        ticket = self.page.locator("#ticket")
        expect(ticket.get_by_role("heading", name=title)).to_be_visible()
        return ticket

    def choices(self) -> list[str]:
        return self.page.locator("#ticket-choices button").all_inner_texts()

    def fact(self, name: str) -> str:
        """The value shown next to ``name`` (帐号, IP, 浏览器, 系统, …) on the ticket screen."""
        term = self.page.locator("#ticket-facts dt").filter(has_text=re.compile(f"^{name}$"))
        return term.locator("xpath=following-sibling::dd[1]").inner_text()

    def decide(self, choice: str, result: str) -> None:
        self.page.locator("#ticket-choices").get_by_role("button", name=choice, exact=True).click()
        expect(self.page.locator("#scan-result")).to_have_text(result)
        expect(self.page.locator("#ticket")).to_be_hidden()


@pytest.fixture
def new_phone(new_page, live_server):
    """``new_phone(openid)``: the simulator in a new browser context, logged in as that WeChat user."""

    def open_phone(openid: str) -> Phone:
        page = new_page()
        page.set_viewport_size(PHONE_SCREEN)
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        phone = Phone(page, openid)
        phone.open()
        phone.log_in()
        return phone

    return open_phone


# --- web steps -------------------------------------------------------------------------------


def wechat_row(page: Page) -> Locator:
    return page.locator("tr[data-method='wechat']")


def qr_url(box: Locator, live_url: str) -> str:
    """The URL the visible QR encodes: <PUBLIC_URL>/wx/t/<ticket>."""
    expect(box.locator(".qr svg")).to_be_visible()
    url = box.locator("[data-qr-url]").get_attribute("data-qr-url")
    assert url and re.fullmatch(re.escape(live_url) + r"/wx/t/[A-Za-z0-9_-]{20,}", url), url
    return url


def expect_scan_status(box: Locator, state: str) -> None:
    """The polling line under a QR: 等待扫码… until the phone scanned, then 已扫码."""
    status = box.locator(".scan-status")
    expect(status).to_have_attribute("data-state", state, timeout=POLLED_MS)
    expect(status).to_contain_text("等待扫码" if state == "pending" else "已扫码,请在手机上确认")


def expect_wechat_bound(page: Page, openid: str) -> None:
    row = wechat_row(page)
    expect(row.locator(".state")).to_contain_text("已绑定")
    expect(row.locator(".state")).to_contain_text(f"微信用户 {openid[:4]}…{openid[-4:]}")
    expect(row.get_by_role("link", name="修改")).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_be_visible()
    expect(row.get_by_role("link", name="绑定", exact=True)).to_have_count(0)


def expect_wechat_unbound(page: Page) -> None:
    row = wechat_row(page)
    expect(row.locator(".state")).to_contain_text("未绑定")
    expect(row.get_by_role("link", name="绑定", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_have_count(0)


def bind_wechat(page: Page, phone: Phone, live_url: str, screenshot: str | None = None) -> None:
    """二次验证设置 → 微信 绑定 → the phone scans and confirms → 绑定成功 → 完成 (图 2-4-1 … 2-4-4)."""
    expect_wechat_unbound(page)
    mark_document(page)
    wechat_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "二次验证设置")
    expect(box).to_contain_text("请打开【微信】扫码绑定")
    expect(box.get_by_role("link", name="取消")).to_be_visible()
    url = qr_url(box, live_url)
    expect_scan_status(box, "pending")
    if screenshot:
        page.screenshot(path=str(SCREENSHOTS / screenshot))

    ticket = phone.scan(url, "绑定邮箱")
    assert phone.choices() == ["确认", "拒绝"]
    expect_scan_status(box, "scanned")  # the web noticed the scan by itself
    expect(ticket).to_be_visible()
    phone.decide("确认", "已确认,请回到网页")

    expect_polled_dialog(page, "绑定成功")  # switched by polling, not by a reload
    finish_dialog(page, "绑定成功")
    assert_same_document(page)
    expect_wechat_bound(page, phone.openid)


def expect_polled_dialog(page: Page, title: str) -> None:
    """The QR dialog turns into ``title`` once a poll sees the phone's decision."""
    expect(dialog(page).get_by_role("heading", name=title)).to_be_visible(timeout=POLLED_MS)


def expect_polled_welcome(page: Page) -> None:
    """The polling second step navigates to 欢迎页 by itself once the phone approved."""
    expect(page).to_have_url(re.compile(r"/$"), timeout=POLLED_MS)
    expect_welcome(page)


def expect_login_qr(page: Page, live_url: str) -> str:
    """The second step offers 扫码授权 with a QR (图 2-5-2); returns the QR's URL."""
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_role("heading", name="二次验证")).to_be_visible()
    expect(page.get_by_text("打开【微信】扫一扫,扫码授权登录")).to_be_visible()
    card = page.locator("main .card")
    url = qr_url(card, live_url)
    expect_scan_status(card, "pending")
    expect(card.get_by_role("link", name="验证码", exact=True)).to_be_visible()
    return url


def log_in_by_scan(page: Page, phone: Phone, live_url: str, choice: str) -> None:
    """Password, then 扫码授权: the phone scans and picks ``choice``; the web page logs in by itself."""
    url = expect_login_qr(page, live_url)
    phone.scan(url, "登录确认")
    phone.decide(choice, "已确认,请回到网页")
    expect_polled_welcome(page)


# --- tests -----------------------------------------------------------------------------------


def test_bind_wechat_with_the_mini_program(live_server, page, new_phone):
    """绑定 → QR dialog → the phone confirms → 绑定成功 by polling → 已绑定; the phone lists the account."""
    account = live_server.create_user("wxalice@mail.xamd.edu.cn", totp=False, name="Alice")
    log_in(page, account)
    expect_welcome(page)  # no factor yet: the password is enough
    open_twofa_settings(page)
    phone = new_phone(FIRST_WECHAT)
    expect(phone.page.locator("#wx-accounts")).to_contain_text("暂无绑定的邮箱")

    bind_wechat(page, phone, live_server.url, screenshot="e2e-wx-bind-dialog.png")

    phone.expect_listed(account)
    code = phone.code_for(account)
    copy = phone.account_row(account).get_by_role("button", name="复制")
    copy.click()
    expect(copy).to_have_text("已复制")
    assert phone.page.evaluate("navigator.clipboard.readText()") == code
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-wx-phone-codes.png"))

    # The dialog is gone and nothing keeps polling: the row stays as it is after a reload too.
    expect(dialog(page)).to_have_count(0)
    page.reload()
    expect_wechat_bound(page, FIRST_WECHAT)


def test_scan_login_trust_device_skips_second_step(live_server, page, new_phone):
    """扫码授权 with 确认授权并信任此设备: this browser's next login needs the password only."""
    account = live_server.create_user("wxbob@mail.xamd.edu.cn", totp=False, name="Bob")
    phone = new_phone(FIRST_WECHAT)
    log_in(page, account)
    open_twofa_settings(page)
    bind_wechat(page, phone, live_server.url)

    log_out(page)
    log_in(page, account)
    url = expect_login_qr(page, live_server.url)
    page.screenshot(path=str(SCREENSHOTS / "e2e-wx-login-qr.png"))

    phone.scan(url, "登录确认")
    assert phone.choices() == ["确认授权并信任此设备", "临时登录", "拒绝"]
    browser, system = useragent.describe(page.evaluate("navigator.userAgent"))
    assert phone.fact("帐号") == "w***b@mail.xamd.edu.cn"
    assert phone.fact("IP") == "127.0.0.1"
    assert phone.fact("浏览器") == browser and browser.startswith("Chrome ")
    assert phone.fact("系统") == system == "Linux"
    assert re.fullmatch(r"\d+ 秒", phone.fact("有效期"))
    expect_scan_status(page.locator("main .card"), "scanned")
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-wx-approval.png"))

    phone.decide("确认授权并信任此设备", "已确认,请回到网页")
    expect_polled_welcome(page)  # the polling page navigated by itself

    log_out(page)
    log_in(page, account)
    expect_welcome(page)  # trusted: no second step
    page.get_by_role("link", name="进入个人设置").click()
    page.get_by_role("navigation", name="个人设置").get_by_role("link", name="信任设备").click()
    expect(page.locator("#devices tbody tr")).to_have_count(1)


def test_scan_login_once_asks_again(live_server, new_page, new_phone):
    """临时登录 in a fresh browser: logged in, but the next login asks for the second step again."""
    account = live_server.create_user("wxcarol@mail.xamd.edu.cn", totp=False)
    phone = new_phone(FIRST_WECHAT)
    setup = new_page()
    log_in(setup, account)
    open_twofa_settings(setup)
    bind_wechat(setup, phone, live_server.url)

    page = new_page()  # another browser: no trust cookie
    log_in(page, account)
    url = expect_login_qr(page, live_server.url)
    # The QR's 在小程序模拟器中打开 link: the simulator scans it by itself right after its login.
    link = page.get_by_role("link", name="在小程序模拟器中打开")
    href = link.get_attribute("href")
    assert href and parse_qs(urlsplit(href).query)["scan"] == [url]
    phone.open(href)
    phone.log_in()
    expect(phone.page.get_by_label("二维码内容(网页二维码的链接)")).to_have_value(url)
    phone.expect_ticket("登录确认")
    phone.decide("临时登录", "已确认,请回到网页")
    expect_polled_welcome(page)

    log_out(page)
    log_in(page, account)
    expect_login_qr(page, live_server.url)  # asked again
    log_in_by_scan(page, phone, live_server.url, "临时登录")
    page.get_by_role("link", name="进入个人设置").click()
    page.get_by_role("navigation", name="个人设置").get_by_role("link", name="信任设备").click()
    expect(page.locator("#devices tbody tr")).to_have_count(0)


def test_log_in_with_the_mini_program_code(live_server, page, new_phone):
    """验证码 instead of scanning: the 6-digit code the mini-program shows for this account."""
    account = live_server.create_user("wxdave@mail.xamd.edu.cn", totp=False)
    phone = new_phone(FIRST_WECHAT)
    log_in(page, account)
    open_twofa_settings(page)
    bind_wechat(page, phone, live_server.url)
    log_out(page)

    log_in(page, account)
    expect_login_qr(page, live_server.url)
    page.get_by_role("link", name="验证码", exact=True).click()
    expect(page).to_have_url(re.compile(r"/login/verify\?.*mode=code"))
    assert parse_qs(urlsplit(page.url).query)["method"] == ["wechat"]
    expect(page.get_by_text("打开微信搜索“邮箱安全助手”小程序,找到本账号的 6 位验证码")).to_be_visible()
    expect(page.locator(".qr")).to_have_count(0)
    expect(page.get_by_role("link", name="扫码授权")).to_be_visible()
    page.get_by_label("验证码").fill(phone.code_for(account))
    page.get_by_role("button", name="确定").click()
    expect_welcome(page)


def test_deny_on_the_phone_shows_a_new_qr(live_server, page, new_phone):
    """拒绝 on the phone: the web says so and shows a fresh QR, which still logs in."""
    account = live_server.create_user("wxerin@mail.xamd.edu.cn", totp=False)
    phone = new_phone(FIRST_WECHAT)
    log_in(page, account)
    open_twofa_settings(page)
    bind_wechat(page, phone, live_server.url)
    log_out(page)

    log_in(page, account)
    first = expect_login_qr(page, live_server.url)
    phone.scan(first, "登录确认")
    phone.decide("拒绝", "已拒绝")

    expect(page.get_by_role("alert")).to_contain_text("该请求已在手机上被拒绝", timeout=POLLED_MS)
    expect(page).to_have_url(re.compile(r"/login/verify\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["method"] == ["wechat"] and query["notice"] == ["denied"], query
    card = page.locator("main .card")
    second = qr_url(card, live_server.url)
    assert second != first
    expect_scan_status(card, "pending")
    page.screenshot(path=str(SCREENSHOTS / "e2e-wx-login-denied.png"))

    phone.scan(second, "登录确认")
    phone.decide("临时登录", "已确认,请回到网页")
    expect_polled_welcome(page)


def test_unbind_by_scanning(live_server, page, new_phone, problems):
    """解绑 → 微信验证 QR → the phone confirms → 解绑成功 → 未绑定; the phone no longer lists it."""
    account = live_server.create_user("wxfrank@mail.xamd.edu.cn", totp=False)
    phone = new_phone(FIRST_WECHAT)
    log_in(page, account)
    open_twofa_settings(page)
    bind_wechat(page, phone, live_server.url)
    phone.expect_listed(account)

    mark_document(page)
    wechat_row(page).get_by_role("link", name="解绑").click()
    box = expect_modal_dialog(page, "微信验证")
    expect(box).to_contain_text("解绑微信前,打开【微信】扫码确认授权")
    expect(box.get_by_role("link", name="验证码", exact=True)).to_be_visible()
    url = qr_url(box, live_server.url)
    page.screenshot(path=str(SCREENSHOTS / "e2e-wx-unbind-dialog.png"))
    phone.scan(url, "解绑确认")
    assert phone.choices() == ["确认", "拒绝"]
    assert phone.fact("帐号") == "w***k@mail.xamd.edu.cn"
    # Its token rested on the removed factor: the next list is refused (401) and it signs in again.
    problems.expect_status("/api/wx/v1/accounts", 401)
    phone.decide("确认", "已确认,请回到网页")

    expect_polled_dialog(page, "解绑成功")
    finish_dialog(page, "解绑成功")
    assert_same_document(page)
    expect_wechat_unbound(page)

    phone.refresh()
    phone.expect_not_listed(account)
    expect(phone.page.locator("#wx-accounts")).to_contain_text("暂无绑定的邮箱")

    log_out(page)
    log_in(page, account)
    expect_welcome(page)  # no factor left: the password is enough


def test_change_to_another_wechat(live_server, page, new_phone, problems):
    """修改: the bound WeChat confirms by scan, then a second WeChat binds; only the second one holds it."""
    account = live_server.create_user("wxgrace@mail.xamd.edu.cn", totp=False)
    first = new_phone(FIRST_WECHAT)
    second = new_phone(SECOND_WECHAT)
    log_in(page, account)
    open_twofa_settings(page)
    bind_wechat(page, first, live_server.url)

    mark_document(page)
    wechat_row(page).get_by_role("link", name="修改").click()
    box = expect_modal_dialog(page, "微信验证")
    expect(box).to_contain_text("修改微信前,打开【微信】扫码确认授权")
    first.scan(qr_url(box, live_server.url), "换绑确认")
    problems.expect_status("/api/wx/v1/accounts", 401)  # once replaced, its token is refused: it signs in again
    first.decide("确认", "已确认,请回到网页")

    # Verified: the dialog turns into the new binding's QR by itself.
    expect_polled_dialog(page, "修改微信:绑定新的微信")
    box = expect_modal_dialog(page, "修改微信:绑定新的微信")
    expect(box).to_contain_text("请打开【微信】扫码绑定")
    expect(box).to_contain_text("确认前原绑定的微信仍然有效")
    second.scan(qr_url(box, live_server.url), "绑定邮箱")
    second.decide("确认", "已确认,请回到网页")
    expect_polled_dialog(page, "绑定成功")
    finish_dialog(page, "绑定成功")
    assert_same_document(page)
    expect_wechat_bound(page, SECOND_WECHAT)

    second.expect_listed(account)
    first.refresh()
    first.expect_not_listed(account)

    # The next login: the old WeChat may not even see the request; the new one approves it.
    log_out(page)
    log_in(page, account)
    url = expect_login_qr(page, live_server.url)
    problems.expect_status(f"/api/wx/v1/tickets/{url.rsplit('/', 1)[1]}", 403)  # the phone logs the 403
    first.page.get_by_label("二维码内容(网页二维码的链接)").fill(url)
    first.page.get_by_role("button", name="扫码").click()
    expect(first.page.locator("#scan-result")).to_have_text("该帐号未绑定当前微信")
    expect(first.page.locator("#ticket")).to_be_hidden()
    expect_scan_status(page.locator("main .card"), "pending")
    second.scan(url, "登录确认")
    second.decide("临时登录", "已确认,请回到网页")
    expect_polled_welcome(page)
