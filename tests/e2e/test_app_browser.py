"""邮箱安全 App in a real browser, with the App simulator (/dev/app) as the phone.

The portal runs with DEV_SIMULATORS and PUBLIC_URL set to its own address. The simulator is a page
in its own browser context (its own localStorage: another phone); it keeps an Ed25519 key per
account in WebCrypto and signs every request to /api/app/v1. It enrolls by pasting the bind QR's
URL (``data-qr-url``) into 扫一扫, shows the 6-digit codes, and polls the pending push challenges
every 3 s. The web dialogs and the login second step poll every 2 s, so every wait for one side to
notice the other is bounded by TIMEOUT_MS.

Issue #4: bind the App via the simulator, log in by push with number matching, log in by code, unbind.
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
DEVICE = "Simulator (Browser)"  # the name and platform the simulator enrolls with
PHONE_SCREEN = {"width": 414, "height": 860}
CODE = re.compile(r"^\d{6}$")
POLLED_MS = TIMEOUT_MS  # the web polls every 2 s, the App every 3 s: a few polls at most
SCAN_FIELD = "二维码内容(网页二维码的链接)"
PUSH_TEXT = "打开【邮箱安全 App】确认授权"


@pytest.fixture
def live_server(app_live_server):
    """Every page of this module (``page``, ``new_page``) is served by the portal with the simulator."""
    return app_live_server


class Phone:
    """The 邮箱安全 App simulator in its own browser context: one phone."""

    def __init__(self, page: Page):
        self.page = page

    def open(self, path: str = "/dev/app") -> None:
        self.page.goto(path)
        expect(self.page.locator(".phone-bar")).to_contain_text("邮箱安全 App")
        problem = self.page.evaluate(
            """async () => {
                if (!window.isSecureContext || !window.crypto || !crypto.subtle) return "no crypto.subtle";
                try {
                    const pair = await crypto.subtle.generateKey({name: "Ed25519"}, true, ["sign", "verify"]);
                    await crypto.subtle.sign({name: "Ed25519"}, pair.privateKey, new Uint8Array([1]));
                    return "";
                } catch (e) { return String(e); }
            }"""
        )
        assert not problem, f"WebCrypto Ed25519 is not available in this Chromium: {problem}"

    # 扫一扫 (图 2-1-3, 图 2-3-6)

    def scan(self, url: str, result: str | re.Pattern) -> None:
        """Paste a web QR's URL into 扫一扫 and scan; the App reports ``result``."""
        self.page.get_by_label(SCAN_FIELD).fill(url)
        self.page.get_by_role("button", name="扫码", exact=True).click()
        self.expect_result(result)

    def expect_result(self, result: str | re.Pattern) -> None:
        expect(self.page.locator("#app-scan-result")).to_have_text(result)

    # 二次验证: the accounts and their codes (图 2-1-4, 图 2-3-4)

    def account_row(self, account: str) -> Locator:
        return self.page.locator("#app-accounts li.code-row").filter(has_text=account)

    def expect_listed(self, account: str) -> None:
        row = self.account_row(account)
        expect(row).to_have_count(1)
        expect(row.locator("[data-code]")).to_have_text(CODE)

    def expect_not_listed(self, account: str) -> None:
        expect(self.account_row(account)).to_have_count(0)

    def code_for(self, account: str) -> str:
        self.expect_listed(account)
        code = self.account_row(account).locator("[data-code]").inner_text().strip()
        assert CODE.match(code), code
        return code

    # 授权请求: push challenges (图 2-3-3, 图 3-1-2)

    def challenge(self, account: str, purpose: str) -> Locator:
        """The one pending challenge of ``account``; it shows up within one 3 s poll."""
        card = self.page.locator("#app-challenges li.challenge").filter(has_text=account)
        expect(card).to_have_count(1, timeout=POLLED_MS)
        expect(card).to_contain_text(f"确定是否授权:{purpose}")
        return card

    def expect_no_challenge(self) -> None:
        expect(self.page.locator("#app-challenges li.challenge")).to_have_count(0, timeout=POLLED_MS)

    @staticmethod
    def choices(card: Locator) -> list[int]:
        buttons = card.locator("button[data-number]")
        expect(buttons).to_have_count(3)
        numbers = [int(n) for n in buttons.all_inner_texts()]
        assert [int(n or 0) for n in (b.get_attribute("data-number") for b in buttons.all())] == numbers
        return numbers

    def pick(self, card: Locator, number: int, result: str) -> None:
        card.get_by_role("button", name=str(number), exact=True).click()
        self.expect_result(result)
        expect(card).to_have_count(0)

    def deny(self, card: Locator) -> None:
        card.get_by_role("button", name="不是本人操作").click()
        self.expect_result("已取消授权")
        expect(card).to_have_count(0)


@pytest.fixture
def new_phone(new_page):
    """``new_phone()``: the simulator in a new browser context (a phone without accounts)."""

    def open_phone() -> Phone:
        page = new_page()
        page.set_viewport_size(PHONE_SCREEN)
        phone = Phone(page)
        phone.open()
        expect(page.locator("#app-accounts")).to_contain_text("暂无帐号")
        expect(page.locator("#app-challenges")).to_contain_text("暂无")
        return phone

    return open_phone


# --- web steps -------------------------------------------------------------------------------


def app_row(page: Page) -> Locator:
    return page.locator("tr[data-method='app']")


def qr_url(box: Locator, live_url: str, kind: str) -> str:
    """The URL the visible QR encodes: <PUBLIC_URL>/app/enroll/<t> (bind) or /app/t/<t> (login)."""
    expect(box.locator(".qr svg")).to_be_visible()
    url = box.locator("[data-qr-url]").get_attribute("data-qr-url")
    assert url and re.fullmatch(re.escape(live_url) + f"/app/{kind}/" + r"[A-Za-z0-9_-]{20,}", url), url
    return url


def simulator_link(box: Locator, url: str) -> str:
    """The QR's development link 在App模拟器中打开: /dev/app?scan=<the QR's URL>."""
    href = box.get_by_role("link", name="在App模拟器中打开").get_attribute("href")
    assert href and urlsplit(href).path == "/dev/app" and parse_qs(urlsplit(href).query)["scan"] == [url], href
    return href


def expect_waiting(box: Locator, push: bool = False) -> None:
    """The polling line: 等待扫码… under a QR, 等待在 App 中确认授权… under a push's number."""
    status = box.locator(".scan-status")
    expect(status).to_have_attribute("data-state", "pending")
    expect(status).to_contain_text("等待在 App 中确认授权…" if push else "等待扫码…")


def expect_app_bound(page: Page) -> None:
    row = app_row(page)
    expect(row.locator(".state")).to_contain_text("已绑定")
    expect(row.locator(".state")).to_contain_text(DEVICE)
    expect(row.get_by_role("link", name="修改")).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_be_visible()
    expect(row.get_by_role("link", name="绑定", exact=True)).to_have_count(0)


def expect_app_unbound(page: Page) -> None:
    row = app_row(page)
    expect(row.locator(".state")).to_contain_text("未绑定")
    expect(row.get_by_role("link", name="绑定", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_have_count(0)


def expect_polled_dialog(page: Page, title: str) -> None:
    """The dialog turns into ``title`` once a poll sees the App's decision."""
    expect(dialog(page).get_by_role("heading", name=title)).to_be_visible(timeout=POLLED_MS)


def expect_polled_welcome(page: Page) -> None:
    """The polling second step navigates to 欢迎页 by itself once the App approved."""
    expect(page).to_have_url(re.compile(r"/$"), timeout=POLLED_MS)
    expect_welcome(page)


def bind_app(page: Page, phone: Phone, account: str, live_url: str, screenshot: str | None = None) -> None:
    """二次验证设置 → 邮箱安全 App 绑定 → the App scans → 绑定成功 by itself → 完成 (图 2-1-1 … 2-1-5)."""
    expect_app_unbound(page)
    mark_document(page)
    app_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "二次验证设置")
    expect(box).to_contain_text("请打开【邮箱安全 App】扫码绑定")
    expect(box.get_by_role("link", name="取消")).to_be_visible()
    url = qr_url(box, live_url, "enroll")
    simulator_link(box, url)
    expect_waiting(box)
    if screenshot:
        page.screenshot(path=str(SCREENSHOTS / screenshot))

    phone.scan(url, f"绑定成功:{account}")
    phone.expect_listed(account)

    expect_polled_dialog(page, "绑定成功")  # switched by polling, not by a reload
    finish_dialog(page, "绑定成功")
    assert_same_document(page)
    expect_app_bound(page)


def set_up_bound_account(live_server, page: Page, phone: Phone, account: str) -> str:
    """An account with only the App bound (through the web), logged out again."""
    live_server.create_user(account, totp=False)
    log_in(page, account)
    expect_welcome(page)
    open_twofa_settings(page)
    bind_app(page, phone, account, live_server.url)
    log_out(page)
    return account


def expect_push(page: Page) -> int:
    """The second step asks to approve in the App and shows the number to pick (图 2-3-2)."""
    expect(page).to_have_url(re.compile(r"/login/verify(\?.*)?$"))
    expect(page.get_by_role("heading", name="二次验证")).to_be_visible()
    card = page.locator("main .card")
    expect(card.get_by_text(PUSH_TEXT)).to_be_visible()
    number = card.locator("[data-match-number]")
    expect(number).to_be_visible()
    value = number.get_attribute("data-match-number")
    assert value and value.isdigit(), value
    expect(number).to_have_text(value)
    expect(card.locator(".qr")).to_have_count(0)
    expect_waiting(card, push=True)
    expect(card.get_by_role("link", name="扫二维码")).to_be_visible()
    expect(card.get_by_role("link", name="验证码", exact=True)).to_be_visible()
    return int(value)


def challenge_path(card: Locator, action: str) -> str:
    return f"/api/app/v1/challenges/{card.get_attribute('data-challenge')}/{action}"


# --- tests -----------------------------------------------------------------------------------


def test_bind_app_with_the_simulator(live_server, page, new_phone):
    """绑定 → QR dialog → the simulator enrolls → 绑定成功 by polling → 已绑定 Simulator (Browser)."""
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
    """The dialog's 在App模拟器中打开 link: the simulator opens with ?scan= and enrolls by itself."""
    account = live_server.create_user("appbea@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    phone = new_phone()
    app_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "二次验证设置")
    href = simulator_link(box, qr_url(box, live_server.url, "enroll"))

    phone.page.goto(href)
    phone.expect_result(f"绑定成功:{account}")
    phone.expect_listed(account)
    expect_polled_dialog(page, "绑定成功")
    finish_dialog(page, "绑定成功")
    expect_app_bound(page)


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
    expect(card).to_contain_text(f"{account} · {browser} · {system} · 127.0.0.1")
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
    problems.expect_status(challenge_path(card, "approve"), 409)  # the simulator logs the refused pick
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

    With 扫码登录时信任该浏览器 ticked in the App, the next login in this browser needs the password only.
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

    phone.page.get_by_label("扫码登录时信任该浏览器").check()
    phone.scan(url, "已确认授权,请回到网页")
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
    bind_app(page, phone, account, live_server.url)

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
