"""Page steps shared by the Chromium tests: log in, the second step, 二次验证设置 and its dialogs, and
the user's authenticator app for 第三方 OTP.

Each step walks the pages as a user would (links and buttons, labels as in the manual). Codes are
computed with pyotp from the secret the dialog shows; a code is single-use per time step, so
``Authenticator`` hands out codes of steps the server has not seen yet (waiting for the next step
only when the server's ±1 step window has nothing fresh left).
"""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import Locator, Page, expect

from tests.conftest import PASSWORD

PERIOD = 30
DIALOG = "#dialog-slot dialog[data-dialog]"


class Authenticator:
    """The user's authenticator app: codes from a secret, never reusing a time step."""

    def __init__(self, uri: str):
        self.totp = pyotp.parse_uri(uri)
        self.last_step: int | None = None

    def code(self) -> str:
        """A code of the first unused step the server accepts now (current or next)."""
        now = time.time()
        current = int(now // PERIOD)
        step = current if self.last_step is None else max(self.last_step + 1, current)
        if step > current + 1:  # both accepted steps used: wait for the next period
            time.sleep((current + 1) * PERIOD - now + 0.2)
        self.last_step = step
        return self.totp.at(step * PERIOD)

    def current_code(self) -> str:
        """What the app shows right now, without marking the step used (for codes meant to fail)."""
        return self.totp.now()

    def wrong_code(self) -> str:
        """A well-formed code that matches none of the steps the server might accept."""
        current = int(time.time() // PERIOD)
        valid = {self.totp.at(s * PERIOD) for s in range(current - 1, current + 3)}
        return next(c for c in (f"{n:06d}" for n in range(123456, 999999, 111111)) if c not in valid)


# --- page steps ------------------------------------------------------------------------------


def log_in(page: Page, account: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    expect(page.get_by_role("heading", name="邮箱登录")).to_be_visible()
    page.get_by_label("账号").fill(account)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def pass_second_step(page: Page, code: str, trust: bool = False) -> None:
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_role("heading", name="二次验证")).to_be_visible()
    page.get_by_label("验证码").fill(code)
    if trust:
        page.get_by_label(re.compile("信任此设备")).check()
    page.get_by_role("button", name="确定").click()


def expect_welcome(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name=re.compile("^欢迎"))).to_be_visible()


def open_twofa_settings(page: Page) -> None:
    """欢迎页 → 个人设置 → 安全设置 → 进入“二次验证设置”, as in the manual."""
    expect_welcome(page)
    page.get_by_role("link", name="进入个人设置").click()
    expect(page.get_by_role("heading", name="个人信息")).to_be_visible()
    page.get_by_role("navigation", name="个人设置").get_by_role("link", name="安全设置", exact=True).click()
    expect(page.get_by_role("heading", name="安全设置")).to_be_visible()
    page.get_by_role("link", name="进入“二次验证设置”").click()
    expect_twofa_page(page)


def expect_twofa_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/settings/security/2fa$"))
    expect(page.get_by_role("heading", name="二次验证设置")).to_be_visible()


def log_out(page: Page) -> None:
    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="邮箱登录")).to_be_visible()


def totp_row(page: Page) -> Locator:
    return page.locator("tr[data-method='totp']")


def dialog(page: Page) -> Locator:
    return page.locator(DIALOG)


def expect_modal_dialog(page: Page, title: str | re.Pattern) -> Locator:
    """The one dialog in #dialog-slot has ``title`` and is open as a modal (app.js calls showModal)."""
    box = dialog(page)
    expect(box.get_by_role("heading", name=title)).to_be_visible()
    expect(box).to_have_count(1)
    page.wait_for_function(f"() => document.querySelector({DIALOG!r})?.matches(':modal')")
    return box


def read_enrollment(box: Locator) -> Authenticator:
    """What a user scans or types: the otpauth URI of the QR and the secret shown as text."""
    uri = box.locator("[data-otpauth-uri]").get_attribute("data-otpauth-uri")
    secret = box.locator("[data-secret]").get_attribute("data-secret")
    assert uri and secret
    assert uri.startswith("otpauth://totp/")
    authenticator = Authenticator(uri)
    assert authenticator.totp.secret == secret
    assert authenticator.totp.digits == 6 and authenticator.totp.interval == PERIOD
    # The secret as text for manual entry (grouped by four) and the QR image are both shown.
    expect(box.locator("[data-secret]")).to_have_text(" ".join(re.findall(".{1,4}", secret)))
    expect(box.locator(".qr svg")).to_be_visible()
    assert box.locator("[data-qr-url]").get_attribute("data-qr-url") == uri
    return authenticator


def submit_dialog(box: Locator, code: str, button: str) -> None:
    box.get_by_placeholder("请输入验证码").fill(code)
    box.get_by_role("button", name=button, exact=True).click()


def finish_dialog(page: Page, title: str) -> None:
    """The success dialog's 完成 closes it in place (no page load)."""
    box = expect_modal_dialog(page, title)
    box.get_by_role("link", name="完成").click()
    expect(dialog(page)).to_have_count(0)


def mark_document(page: Page) -> None:
    """Tag the current document, so that ``assert_same_document`` can tell a reload happened."""
    page.evaluate("window.__e2eSameDocument = true")


def assert_same_document(page: Page) -> None:
    assert page.evaluate("window.__e2eSameDocument === true"), "the page was reloaded"


def expect_bound(page: Page) -> None:
    row = totp_row(page)
    expect(row.locator(".state")).to_contain_text("已绑定")
    expect(row.get_by_role("link", name="修改")).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_be_visible()
    expect(row.get_by_role("link", name="绑定", exact=True)).to_have_count(0)


def expect_unbound(page: Page) -> None:
    row = totp_row(page)
    expect(row.locator(".state")).to_contain_text("未绑定")
    expect(row.get_by_role("link", name="绑定", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="解绑")).to_have_count(0)


def bind_totp(page: Page) -> Authenticator:
    """From 二次验证设置: 绑定 → scan → confirm with a code → 绑定成功 (left open)."""
    totp_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "第三方 OTP 绑定")
    authenticator = read_enrollment(box)
    submit_dialog(box, authenticator.code(), "绑定")
    expect_modal_dialog(page, "绑定成功")
    return authenticator
