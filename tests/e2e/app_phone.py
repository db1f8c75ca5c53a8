"""The 邮箱安全 App (/app) as the phone in Chromium tests, and the web steps around it (bind, push, QR).

Each phone is a browser context of its own (its own IndexedDB): the ``new_phone`` fixture (import it).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

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

SCREENSHOTS = Path("/tmp")
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
)
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "user_agent": ANDROID}
DEVICE = "手机 (Android)"  # the name and platform the App enrolls with on that phone, unless the user changes it
CODE = re.compile(r"^\d{6}$")
POLLED_MS = TIMEOUT_MS  # the web polls every 2 s, the App every 3 s: a few polls at most
SCAN_FIELD = "二维码内容(网页二维码的链接)"
PUSH_TEXT = "打开【邮箱安全 App】确认授权"


class Phone:
    """A phone with the 邮箱安全 App open (/app) in its own browser context."""

    def __init__(self, page: Page):
        self.page = page

    def open(self, path: str = "/app") -> None:
        self.page.goto(path)
        expect(self.page.locator(".bar h1")).to_contain_text("邮箱安全")

    # 扫一扫 (图 2-1-3, 图 2-3-6): here the QR's link is pasted; test_app_pwa.py points the camera at it

    def scan(self, url: str) -> None:
        """ "+" → 扫一扫 → the web QR's URL → 确定: the App shows what the QR asks for."""
        self.page.get_by_role("button", name="添加").click()
        self.page.get_by_role("menuitem", name="扫一扫").click()
        self.page.get_by_label(SCAN_FIELD).fill(url)
        self.page.get_by_role("button", name="确定", exact=True).click()

    def enroll(self, url: str, account: str, *, open_link: bool = True) -> None:
        """The bind QR: opened on the phone (its camera opens the link) or scanned in the App → 确定绑定."""
        if open_link:
            self.page.goto(url)
        else:
            self.scan(url)
        expect(self.page.get_by_role("heading", name="绑定邮箱安全 App")).to_be_visible()
        self.page.get_by_role("button", name="确定绑定").click()
        self.expect_result(f"绑定成功:{account}")

    def approve_qr(self, url: str, button: str) -> None:
        """A login (or 解绑) QR scanned in the App: its 扫码登录 screen → ``button``."""
        self.scan(url)
        self.page.get_by_role("button", name=button).click()
        self.expect_result("已确认授权,请回到网页")

    def expect_result(self, result: str | re.Pattern) -> None:
        expect(self.page.locator("#app-status")).to_have_text(result)

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
        """Pick the number (确定授权 waits for it), then 确定授权."""
        approve = card.get_by_role("button", name="确定授权")
        expect(approve).to_be_disabled()
        card.get_by_role("button", name=str(number), exact=True).click()
        expect(card.get_by_role("button", name=str(number), exact=True)).to_have_attribute("aria-pressed", "true")
        approve.click()
        self.expect_result(result)
        expect(card).to_have_count(0)

    def deny(self, card: Locator, button: str = "不是本人操作") -> None:
        card.get_by_role("button", name=button).click()
        self.expect_result("已取消授权")
        expect(card).to_have_count(0)


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


def expect_app_bound(page: Page, device: str = DEVICE) -> None:
    row = app_row(page)
    expect(row.locator(".state")).to_contain_text("已绑定")
    expect(row.locator(".state")).to_contain_text(device)
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


def bind_app(
    page: Page, phone: Phone, account: str, live_url: str, screenshot: str | None = None, open_link: bool = True
) -> None:
    """二次验证设置 → 邮箱安全 App 绑定 → the phone opens the QR's link (or the App scans it) → 确定绑定 →
    绑定成功 by itself → 完成 (图 2-1-1 … 2-1-5)."""
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

    phone.enroll(url, account, open_link=open_link)
    phone.expect_listed(account)

    expect_polled_dialog(page, "绑定成功")  # switched by polling, not by a reload
    finish_dialog(page, "绑定成功")
    assert_same_document(page)
    expect_app_bound(page)


def set_up_bound_account(live_server, page: Page, phone: Phone, account: str, name: str = "") -> str:
    """An account with only the App bound (through the web), logged out again."""
    live_server.create_user(account, totp=False, name=name)
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


@pytest.fixture
def new_phone(new_page):
    """``new_phone()``: the App on a new phone (a phone-sized browser context without accounts)."""

    def open_phone() -> Phone:
        phone = Phone(new_page(**PHONE))
        phone.open()
        expect(phone.page.locator("#app-accounts")).to_contain_text("暂无帐号")
        expect(phone.page.locator("#app-challenges")).to_contain_text("暂无")
        return phone

    return open_phone
