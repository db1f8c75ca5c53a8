"""备用邮箱 in a real browser: bind with a code mailed through a real SMTP server, then log in with one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.services import accounts
from tests.e2e.pages import (
    expect_modal_dialog,
    expect_welcome,
    finish_dialog,
    log_in,
    log_out,
    open_twofa_settings,
)

pytestmark = pytest.mark.e2e

BACKUP = "carol.home@example.org"


def test_bind_and_log_in_with_sent_codes(live_server, page, smtp_server):
    live_server.app.config["SMTP_URL"] = smtp_server.url
    account = live_server.create_user("carol@mail.xamd.edu.cn", totp=False)
    live_server.run(lambda: accounts.set_policy(account, methods="email"))

    def mails() -> int:
        return len(smtp_server.handler.to(BACKUP))

    log_in(page, account)
    open_twofa_settings(page)
    page.locator("tr[data-method='email']").get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "备用邮箱绑定")
    box.get_by_label("备用邮箱").fill(BACKUP)
    before = mails()
    box.get_by_role("button", name="发送验证码").click()
    expect(box.get_by_role("status")).to_contain_text("验证码已发送至 c***e@example.org")
    box.get_by_placeholder("请输入验证码").fill(smtp_server.code_for(BACKUP, after=before))
    box.get_by_role("button", name="绑定", exact=True).click()
    finish_dialog(page, "绑定成功")
    expect(page.locator("tr[data-method='email']")).to_contain_text("c***e@example.org")

    log_out(page)
    log_in(page, account)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_text("验证码将发送到您的备用邮箱 c***e@example.org")).to_be_visible()
    before = mails()
    page.get_by_role("button", name="发送验证码").click()
    expect(page.get_by_role("status").filter(has_text="验证码已发送至")).to_be_visible()
    page.get_by_label("验证码").fill(smtp_server.code_for(BACKUP, after=before))
    page.get_by_role("button", name="确定").click()
    expect_welcome(page)
