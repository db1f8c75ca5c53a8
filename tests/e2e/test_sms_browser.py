"""短信 in Chromium: bind a number from the dialog with the code the (loopback Aliyun) provider received,
then log in with a texted code. The stub checks every request's signature."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.models import ThrottleCounter
from portal.services import accounts
from tests.e2e.conftest import serve_portal
from tests.e2e.pages import expect_modal_dialog, expect_welcome, finish_dialog, log_in, log_out, open_twofa_settings

pytestmark = pytest.mark.e2e
PHONE = "+8613800138000"


@pytest.fixture
def live_server(tmp_path, sms_stub):
    with serve_portal(tmp_path / "e2e.db", **sms_stub.config("aliyun")) as server:
        yield server


def test_bind_a_phone_and_log_in_with_a_texted_code(live_server, page, sms_stub):
    account = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice", totp=False)
    live_server.run(lambda: accounts.set_policy(account, methods="sms"))
    log_in(page, account)
    open_twofa_settings(page)

    page.locator("tr[data-method='sms']").get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "短信验证绑定")
    box.get_by_label("手机号码").fill("138 0013 8000")
    box.get_by_role("button", name="发送验证码").click()
    expect(box.get_by_text("验证码已发送至 138****8000")).to_be_visible()
    page.screenshot(path=str(Path("/tmp/e2e-sms-bind.png")))
    box.get_by_label(re.compile("输入短信中的")).fill(sms_stub.wait_for_code(PHONE))
    box.get_by_role("button", name="绑定", exact=True).click()
    finish_dialog(page, "绑定成功")
    expect(page.locator("tr[data-method='sms']")).to_contain_text("138****8000")

    log_out(page)
    live_server.run(lambda: ThrottleCounter.delete().where(ThrottleCounter.scope == "smsnumber:60").execute())
    log_in(page, account)
    expect(page.get_by_text("验证码将发送到您的手机 138****8000")).to_be_visible()
    sent = len(sms_stub.codes(PHONE))
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(sms_stub.wait_for_code(PHONE, after=sent))
    page.get_by_role("button", name="确定").click()
    expect_welcome(page)
    assert sms_stub.rejections == []  # every request was signed right
