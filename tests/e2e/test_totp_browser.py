"""第三方 OTP in a real browser: bind from the dialog, log in with a code, 修改, 解绑, forced binding, 信任此设备.

Each test walks the pages as a user would (links and buttons, labels as in the manual). Codes are
computed with pyotp from the secret the dialog shows; a code is single-use per time step, so
``Authenticator`` hands out codes of steps the server has not seen yet (waiting for the next step
only when the server's ±1 step window has nothing fresh left).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e

PERIOD = 30
SCREENSHOT = Path("/tmp/e2e-bind-dialog.png")
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


# --- tests -----------------------------------------------------------------------------------


def test_bind_log_in_with_code_and_unbind(live_server, page):
    """Logs in, binds 第三方 OTP from the dialog, logs out, logs in with a code, then unbinds."""
    account = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice")
    log_in(page, account)
    open_twofa_settings(page)
    expect_unbound(page)
    mark_document(page)

    totp_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "第三方 OTP 绑定")
    authenticator = read_enrollment(box)
    expect(box.get_by_role("button", name="绑定", exact=True)).to_be_visible()
    expect(box.get_by_role("link", name="取消")).to_be_visible()
    page.screenshot(path=str(SCREENSHOT))

    # A wrong code: the error shows inside the (still modal) dialog, with the same secret.
    submit_dialog(box, authenticator.wrong_code(), "绑定")
    expect(box.get_by_role("alert")).to_contain_text("验证码错误")  # waits for the re-rendered dialog
    box = expect_modal_dialog(page, "第三方 OTP 绑定")
    assert box.locator("[data-secret]").get_attribute("data-secret") == authenticator.totp.secret

    submit_dialog(box, authenticator.code(), "绑定")
    finish_dialog(page, "绑定成功")
    expect_bound(page)
    assert_same_document(page)

    log_out(page)
    log_in(page, account)
    pass_second_step(page, authenticator.code())
    expect_welcome(page)

    open_twofa_settings(page)
    expect_bound(page)
    mark_document(page)
    totp_row(page).get_by_role("link", name="解绑").click()
    box = expect_modal_dialog(page, "第三方 OTP验证")
    expect(box).to_contain_text("解绑第三方 OTP前")
    submit_dialog(box, authenticator.code(), "确定")
    finish_dialog(page, "解绑成功")
    expect_unbound(page)
    assert_same_document(page)

    # Without a factor the next login needs only the password.
    log_out(page)
    log_in(page, account)
    expect_welcome(page)


def test_forced_binding_then_mailbox(live_server, page):
    """A listed user must bind after the password step; 进入邮箱 then opens the mailbox."""
    account = live_server.create_user("bob@mail.xamd.edu.cn", force=True)
    log_in(page, account)
    expect_twofa_page(page)
    expect(page.get_by_role("alert")).to_contain_text("根据管理员要求")
    expect(page.get_by_role("navigation", name="个人设置")).to_have_count(0)

    # Nothing beyond the binding pages is reachable before binding.
    page.goto("/")
    expect_twofa_page(page)

    bind_totp(page)
    box = dialog(page)
    box.get_by_role("link", name="进入邮箱").click()
    expect_welcome(page)
    page.goto("/settings/security/2fa")
    expect_bound(page)
    expect(page.get_by_text("根据管理员要求")).to_have_count(0)


def test_change_secret_then_log_in_with_new_one(live_server, page, problems):
    """修改: verify with the current code, bind a new secret, and only the new one works afterwards."""
    account = live_server.create_user("carol@mail.xamd.edu.cn")
    log_in(page, account)
    open_twofa_settings(page)
    old = bind_totp(page)
    finish_dialog(page, "绑定成功")

    totp_row(page).get_by_role("link", name="修改").click()
    box = expect_modal_dialog(page, "第三方 OTP验证")
    expect(box).to_contain_text("修改第三方 OTP前")
    submit_dialog(box, old.code(), "确定")
    box = expect_modal_dialog(page, "修改第三方 OTP:绑定新的验证器")
    new = read_enrollment(box)
    assert new.totp.secret != old.totp.secret
    submit_dialog(box, new.code(), "绑定")
    finish_dialog(page, "绑定成功")
    expect_bound(page)

    log_out(page)
    log_in(page, account)
    problems.expect_status("/login/verify", 400)  # the old secret's code is refused
    pass_second_step(page, old.current_code())
    expect(page.get_by_role("alert")).to_contain_text("验证码错误")
    pass_second_step(page, new.code())
    expect_welcome(page)


def test_trusted_device_skips_second_step(live_server, new_page):
    """信任此设备 ticked at login: the next login in this browser skips the second step, not in another."""
    account = live_server.create_user("dave@mail.xamd.edu.cn")
    page = new_page()
    log_in(page, account)
    open_twofa_settings(page)
    authenticator = bind_totp(page)
    finish_dialog(page, "绑定成功")

    log_out(page)
    log_in(page, account)
    pass_second_step(page, authenticator.code(), trust=True)
    expect_welcome(page)

    log_out(page)
    log_in(page, account)
    expect_welcome(page)
    page.get_by_role("link", name="进入个人设置").click()
    page.get_by_role("navigation", name="个人设置").get_by_role("link", name="信任设备").click()
    expect(page.locator("#devices tbody tr")).to_have_count(1)

    other = new_page()  # another browser: no trust cookie, so the second step is asked
    log_in(other, account)
    expect(other).to_have_url(re.compile(r"/login/verify$"))
