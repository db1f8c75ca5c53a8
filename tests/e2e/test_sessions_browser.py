"""登录设备 in a real browser: two browsers of one account, one ends the other."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect

from portal import crypto
from portal.models import Factor, User
from tests.e2e.pages import Authenticator, expect_welcome, log_in, pass_second_step

pytestmark = pytest.mark.e2e

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
}


def test_one_browser_ends_the_other(live_server, new_page):
    account = live_server.create_user("erin@mail.xamd.edu.cn", name="Erin")
    secret = pyotp.random_base32()
    live_server.run(
        lambda: Factor.create(user=User.get(User.account == account), method="totp", secret=crypto.encrypt(secret))
    )
    authenticator = Authenticator(pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name="e2e"))

    phone, desktop = new_page(**PHONE), new_page(**DESKTOP)
    for page in (phone, desktop):
        log_in(page, account)
        pass_second_step(page, authenticator.code())
        expect_welcome(page)

    desktop.get_by_role("link", name="进入个人设置").click()
    desktop.get_by_role("navigation", name="个人设置").get_by_role("link", name="登录设备").click()
    expect(desktop).to_have_url(re.compile(r"/settings/security/sessions$"))
    expect(desktop.get_by_role("heading", name="登录设备")).to_be_visible()
    rows = desktop.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    current = desktop.locator("#sessions tr[data-current]")
    expect(current).to_have_count(1)
    expect(current).to_contain_text("当前设备")
    expect(current).to_contain_text("Chrome")
    other = rows.filter(has_text="Safari 17")
    expect(other).to_contain_text("iOS")
    expect(other).not_to_contain_text("当前设备")
    desktop.screenshot(path="/tmp/e2e-sessions-desktop.png", full_page=True)

    phone.goto("/settings/security/sessions")
    expect(phone.locator("#sessions tr[data-current]")).to_contain_text("Safari 17")
    phone.screenshot(path="/tmp/e2e-sessions-phone.png", full_page=True)

    desktop.get_by_role("link", name="退出其他所有设备").click()
    box = desktop.locator("#dialog-slot dialog[data-dialog]")
    expect(box.get_by_role("heading", name="退出其他所有设备")).to_be_visible()
    expect(box).to_contain_text("确定退出其他 1 台设备")
    desktop.screenshot(path="/tmp/e2e-sessions-dialog.png")
    box.get_by_role("link", name="取消").click()
    expect(box).to_have_count(0)

    other.get_by_role("button", name="退出").click()
    expect(desktop.get_by_role("status")).to_contain_text("已退出该设备")
    expect(rows).to_have_count(1)
    expect(desktop.locator("#sessions tr[data-current]")).to_have_count(1)

    phone.get_by_role("link", name="登录设备").click()  # its next navigation: the session has ended
    expect(phone).to_have_url(re.compile(r"/login$"))
    expect(phone.get_by_role("heading", name="邮箱登录")).to_be_visible()
    desktop.reload()
    expect(rows).to_have_count(1)
