"""/admin in a real browser: an admin binds as required, opens the reports, and helps a locked-out user."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.services import accounts
from tests.conftest import PASSWORD
from tests.e2e.pages import bind_totp, dialog, expect_welcome, log_in, log_out, pass_second_step

pytestmark = pytest.mark.e2e

ADMIN = "it-admin@mail.xamd.edu.cn"


def test_admin_unlocks_and_resets_a_user_from_the_reports(live_server, new_page, problems):
    live_server.run(lambda: accounts.create(ADMIN, PASSWORD, name="信息中心", admin=True))
    user = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice")
    live_server.app.config["THROTTLE_ACCOUNT_FAILURES"] = 3

    # Alice forgets her password three times: locked out.
    alice = new_page()
    problems.expect_status("/login", 401)
    problems.expect_status("/login", 429)
    for _ in range(3):
        log_in(alice, user, "Wrong-horse-1")
        expect(alice.get_by_role("alert")).to_contain_text("账号或密码错误")
    log_in(alice, user)
    expect(alice.get_by_role("alert")).to_contain_text("尝试次数过多")

    # The admin must bind a second factor first (admins always must), then finds 管理 on the welcome page.
    page = new_page()
    log_in(page, ADMIN)
    authenticator = bind_totp(page)
    dialog(page).get_by_role("link", name="进入邮箱").click()
    expect_welcome(page)
    log_out(page)
    log_in(page, ADMIN)
    pass_second_step(page, authenticator.code())
    page.get_by_role("link", name=re.compile("管理控制台")).click()
    expect(page.get_by_role("heading", name="二次验证启用情况")).to_be_visible()
    expect(page.locator("[data-stat='users']")).to_have_text("2")
    lockouts = page.locator("#lockouts")
    expect(lockouts).to_contain_text(user)

    # 用户支持 from the lockout row: 解除锁定 swaps the panel in place; Alice can log in again.
    lockouts.get_by_role("link", name="用户支持").click()
    expect(page.get_by_role("heading", name="用户支持")).to_be_visible()
    expect(page.locator("[data-field='failures']")).to_contain_text("密码 3 次")
    page.evaluate("window.__e2eSameDocument = true")
    action(page, "unlock").get_by_label("原因").fill("工单 #42")
    page.get_by_role("button", name="解除锁定").click()
    expect(page.get_by_role("status").filter(has_text="已解除锁定")).to_be_visible()
    expect(page.locator("[data-field='failures']")).to_contain_text("密码 0 次")
    assert page.evaluate("window.__e2eSameDocument === true"), "the action reloaded the page"
    log_in(alice, user)
    expect_welcome(alice)

    # 停用账号 asks for confirmation; the status changes in place.
    page.once("dialog", lambda confirm: confirm.accept())
    action(page, "disable").get_by_label("原因").fill("工单 #43")
    page.get_by_role("button", name="停用账号").click()
    expect(page.locator("[data-field='status']")).to_contain_text("已停用")
    action(page, "enable").get_by_label("原因").fill("工单 #43")
    page.get_by_role("button", name="启用账号").click()
    expect(page.locator("[data-field='status']")).to_contain_text("正常")

    # Looking up another account by its address.
    page.get_by_label("邮箱账号").fill(ADMIN)
    page.get_by_role("button", name="查找").click()
    expect(page.locator("[data-field='methods']")).to_contain_text("第三方 OTP")
    expect(page.get_by_role("button", name="停用账号")).to_have_count(0)  # not one's own account

    # A refused action (taking one's own admin role) answers 403: the panel shows why, in place.
    problems.expect_status("/admin/users/role", 403)
    page.evaluate("window.__e2eSameDocument = true")
    role = action(page, "role")
    role.get_by_label("管理后台角色").select_option("none")
    role.get_by_label("原因").fill("工单 #44")
    role.get_by_role("button", name="保存").click()
    expect(page.get_by_role("alert")).to_contain_text("不能取消自己的管理员角色")
    assert page.evaluate("window.__e2eSameDocument === true"), "the refusal reloaded the page"


def action(page, key: str):
    """One action form of the 用户支持 panel."""
    return page.locator(f"form[data-action='{key}']")
