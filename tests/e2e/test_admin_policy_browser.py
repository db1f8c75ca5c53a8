"""策略 in a real browser: the admin allows 稍后绑定 with a deadline; a bad value is shown beside its field;
a user forced to bind then puts it off once from the binding page and reaches the 欢迎页."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from portal.services import accounts
from tests.conftest import PASSWORD
from tests.e2e.pages import bind_totp, dialog, expect_welcome, log_in, log_out, pass_second_step

pytestmark = pytest.mark.e2e

ADMIN = "it-admin@mail.xamd.edu.cn"
SHOTS = os.environ.get("PORTAL_E2E_SHOTS", "")  # a directory: save screenshots there (for reviewing the page)
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def admin_page(new_page):
    """The admin binds 第三方 OTP (admins always must), then logs in with it: (page, authenticator)."""
    page = new_page(**DESKTOP)
    log_in(page, ADMIN)
    authenticator = bind_totp(page)
    dialog(page).get_by_role("link", name="进入邮箱").click()
    expect_welcome(page)
    log_out(page)
    log_in(page, ADMIN)
    pass_second_step(page, authenticator.code())
    return page, authenticator


def test_the_admin_allows_bind_later_and_a_forced_user_uses_it(live_server, new_page, problems):
    live_server.run(lambda: accounts.create(ADMIN, PASSWORD, name="信息中心", admin=True))
    user = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice")
    page, authenticator = admin_page(new_page)
    page.goto("/admin")
    page.get_by_role("link", name="策略").click()
    expect(page.get_by_role("heading", name="策略")).to_be_visible()
    shot(page, "policy-desktop")

    problems.expect_status("/admin/policy", 400)
    page.get_by_label("信任设备有效期(天)").fill("120")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("[data-error='trusted_device_days']")).to_contain_text("1 到 90")
    expect(page.get_by_label("信任设备有效期(天)")).to_be_focused()  # the first refused field
    shot(page, "policy-error-desktop")

    deadline = (date.today() + timedelta(days=30)).isoformat()
    page.get_by_label("信任设备有效期(天)").fill("14")
    page.get_by_role("radio", name="所有用户").check()
    page.get_by_label("“稍后绑定”次数").fill("2")
    page.get_by_label("绑定截止日期").fill(deadline)
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("status")).to_contain_text("已保存 4 项修改")

    alice = new_page(**DESKTOP)
    log_in(alice, user)
    expect(alice.get_by_role("alert").first).to_contain_text("根据管理员要求")
    expect(alice.locator("[data-bind-later]")).to_contain_text(f"绑定截止日期为 {deadline}")
    expect(alice.locator("[data-bind-later]")).to_contain_text("2 次")
    shot(alice, "bind-later-desktop")
    alice.get_by_role("button", name="稍后绑定").click()
    expect_welcome(alice)

    phone = new_page(**PHONE)
    log_in(phone, ADMIN)
    pass_second_step(phone, authenticator.code())
    phone.goto("/admin/policy")
    expect(phone.get_by_role("heading", name="策略")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "wider than a phone"
    shot(phone, "policy-phone")
    alice_phone = new_page(**PHONE)
    log_in(alice_phone, user)
    expect(alice_phone.locator("[data-bind-later]")).to_contain_text("1 次")
    shot(alice_phone, "bind-later-phone")
    assert re.search(r"稍后绑定", alice_phone.content())
