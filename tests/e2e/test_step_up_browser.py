"""安全验证 (step-up) in a real browser: a trusted-device login asks for a code before 生成专用密码,
then the dialog it asked for opens in place (htmx HX-Location into #dialog-slot)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import (
    assert_same_document,
    bind_totp,
    dialog,
    expect_modal_dialog,
    expect_welcome,
    finish_dialog,
    log_in,
    log_out,
    mark_document,
    open_twofa_settings,
    pass_second_step,
    submit_dialog,
)

pytestmark = pytest.mark.e2e


def test_an_app_password_after_a_trusted_device_login_needs_a_code(live_server, page, problems):
    account = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice")
    log_in(page, account)
    open_twofa_settings(page)
    authenticator = bind_totp(page)
    finish_dialog(page, "绑定成功")
    log_out(page)
    log_in(page, account)
    pass_second_step(page, authenticator.code(), trust=True)
    log_out(page)
    log_in(page, account)  # this browser is trusted: no second step, so no fresh verification
    expect_welcome(page)

    page.goto("/settings/security/app-passwords")
    mark_document(page)
    page.get_by_role("link", name="生成专用密码").click()
    box = expect_modal_dialog(page, "安全验证")
    expect(box).to_contain_text("为保护您的帐号,生成专用密码前需要再验证一次身份")
    problems.expect_status("/settings/security/verify/app-password", 400)  # a wrong code's answer is logged
    submit_dialog(box, authenticator.wrong_code(), "确定")
    expect(box.get_by_role("alert")).to_contain_text(re.compile("验证码错误"))
    submit_dialog(dialog(page), authenticator.code(), "确定")

    box = expect_modal_dialog(page, "专用密码生成")  # the dialog it asked for, in the same place
    box.get_by_label("密码名称").fill("Foxmail")
    box.get_by_role("button", name="生成").click()
    expect(dialog(page).locator("[data-app-password]")).to_be_visible()
    assert_same_document(page)
