"""第三方 OTP in a real browser: bind from the dialog, log in with a code, 修改, 解绑, forced binding, 信任此设备."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import (
    assert_same_document,
    bind_totp,
    dialog,
    expect_bound,
    expect_modal_dialog,
    expect_twofa_page,
    expect_unbound,
    expect_welcome,
    finish_dialog,
    log_in,
    log_out,
    mark_document,
    open_twofa_settings,
    pass_second_step,
    read_enrollment,
    submit_dialog,
    totp_row,
)

pytestmark = pytest.mark.e2e

SCREENSHOT = Path("/tmp/e2e-bind-dialog.png")


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
