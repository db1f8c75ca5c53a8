"""/admin: reports and user support, for admins with a full session only; every action audited."""

from __future__ import annotations

import re

import pyotp
import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, TrustedDevice
from portal.services import accounts, app_passwords, throttle
from portal.services.client import Client
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

ADMIN = "it-admin@mail.xamd.edu.cn"


def bind_totp(user) -> str:
    secret = pyotp.random_base32()
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
    return secret


@pytest.fixture
def admin(ctx):
    return accounts.create(ADMIN, PASSWORD, name="信息中心", admin=True)


@pytest.fixture
def admin_browser(new_browser, admin, clock):
    browser = new_browser()
    complete_login(browser, admin.account, bind_totp(admin), clock)
    return browser


def field(response, name: str) -> str:
    """The text of one fact in the 用户支持 panel (data-field)."""
    return re.search(rf'data-field="{name}">(.*?)</dd>', text(response), re.S).group(1)


def stat(response, name: str) -> int:
    return int(re.search(rf'data-stat="{name}">(\d+)', text(response)).group(1))


def activity(response, label: str) -> list[int]:
    row = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", text(response), re.S).group(1)
    return [int(n) for n in re.findall(r"<td>(\d+)</td>", row)]


def fail_logins(new_browser, account: str, times: int) -> None:
    for _ in range(times):
        assert new_browser().login(account, "Wrong-horse-1").status_code == 401


# --- who may see it ---


def test_a_user_who_is_not_an_admin_is_refused(browser, user):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    response = browser.get("/admin")
    assert response.status_code == 403 and "仅管理员" in text(response)
    assert browser.get("/admin/users?account=" + user.account).status_code == 403
    assert browser.post("/admin/users/unlock", {"account": user.account}).status_code == 403


def test_an_admin_halfway_through_the_login_is_sent_to_the_second_step(new_browser, admin):
    bind_totp(admin)
    browser = new_browser()
    assert location(browser.login(admin.account, PASSWORD)) == "/login/verify"
    assert location(browser.get("/admin")) == "/login/verify"
    assert location(browser.post("/admin/users/unlock", {"account": admin.account})) == "/login/verify"


def test_signed_out_visitors_are_sent_to_the_login(new_browser):
    assert location(new_browser().get("/admin")) == "/login"


def test_the_welcome_page_links_admins_to_the_reports(admin_browser, browser, user):
    assert 'href="/admin"' in text(admin_browser.get("/"))
    browser.login(user.account, PASSWORD)
    assert 'href="/admin"' not in text(browser.get("/"))


# --- reports ---


def test_adoption_counts_accounts_and_their_factors(admin_browser, user):
    before = admin_browser.get("/admin")
    assert (stat(before, "users"), stat(before, "protected")) == (2, 1)  # the admin has bound OTP
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    bind_totp(bob)
    app_passwords.create(bob, "Foxmail", Client(ip="198.51.100.8"))
    accounts.create("carol@mail.xamd.edu.cn", PASSWORD)
    accounts.set_disabled("carol@mail.xamd.edu.cn", True)  # disabled accounts are not counted
    after = admin_browser.get("/admin")
    assert (stat(after, "users"), stat(after, "protected"), stat(after, "app_passwords")) == (3, 2, 1)
    assert re.search(r"<td>第三方 OTP</td><td>2</td>", text(after))


def test_activity_counts_logins_and_failures(admin_browser, new_browser, user):
    before = activity(admin_browser.get("/admin"), "密码错误")
    fail_logins(new_browser, user.account, 3)
    assert location(new_browser().login(user.account, PASSWORD)) == "/"
    page = admin_browser.get("/admin")
    assert activity(page, "密码错误") == [n + 3 for n in before]
    assert activity(page, "网页登录成功")[0] >= 2  # the admin and the user


@pytest.mark.app_config(THROTTLE_ACCOUNT_FAILURES=3)
def test_a_locked_account_is_listed_and_can_be_unlocked(admin_browser, new_browser, user):
    fail_logins(new_browser, user.account, 3)
    assert new_browser().login(user.account, PASSWORD).status_code == 429
    page = text(admin_browser.get("/admin"))
    assert re.search(rf"<td>{re.escape(user.account)}</td>\s*<td>{re.escape('密码(账号)')}</td>", page)

    response = admin_browser.post("/admin/users/unlock", {"account": user.account}, htmx=True)
    assert response.status_code == 200 and "已解除锁定" in text(response)
    assert throttle.failures("password", user.account) == 0
    assert location(new_browser().login(user.account, PASSWORD)) == "/"
    event = AuditEvent.get(AuditEvent.event == "user_unlocked")
    assert event.account == user.account and f"by {ADMIN}" in event.detail and event.ip


# --- user support ---


def test_looking_up_an_account_shows_its_state(admin_browser, user, totp_secret):
    response = admin_browser.get(f"/admin/users?account={user.account.upper()}")
    body = text(response)
    assert response.status_code == 200 and user.account in body
    assert "第三方 OTP" in field(response, "methods")
    assert "重置二次验证" in body


def test_looking_up_an_unknown_account_says_so(admin_browser):
    response = admin_browser.get("/admin/users?account=ghost@mail.xamd.edu.cn")
    assert response.status_code == 404 and "账号不存在" in text(response)


def test_reset_2fa_needs_a_reason_and_changes_nothing_without_one(admin_browser, user, totp_secret):
    response = admin_browser.post("/admin/users/reset-2fa", {"account": user.account, "reason": "  "}, htmx=True)
    assert response.status_code == 400 and "原因" in text(response)
    assert Factor.select().where(Factor.user == user).count() == 1


def test_reset_2fa_removes_the_factors_and_ends_the_users_sessions(admin_browser, new_browser, user, clock):
    secret = bind_totp(user)
    victim = new_browser()
    complete_login(victim, user.account, secret, clock, trust=True)
    assert TrustedDevice.select().where(TrustedDevice.user == user).count() == 1

    form = {"account": user.account, "reason": "手机丢失,工单 #42"}
    response = admin_browser.post("/admin/users/reset-2fa", form, htmx=True)
    assert response.status_code == 200 and "已重置二次验证" in text(response)
    assert not Factor.select().where(Factor.user == user).exists()
    assert location(victim.get("/")) == "/login"  # the old session is gone
    event = AuditEvent.get(AuditEvent.event == "2fa_reset")
    assert "工单 #42" in event.detail and f"by {ADMIN}" in event.detail


def test_disable_and_enable_an_account(admin_browser, new_browser, user):
    response = admin_browser.post("/admin/users/disable", {"account": user.account}, htmx=True)
    assert "账号已停用" in text(response) and "已停用" in field(response, "status")
    assert new_browser().login(user.account, PASSWORD).status_code == 401
    assert app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9").reason == "disabled"
    admin_browser.post("/admin/users/enable", {"account": user.account}, htmx=True)
    assert location(new_browser().login(user.account, PASSWORD)) == "/"


def test_an_admin_cannot_disable_their_own_account(admin_browser, admin):
    response = admin_browser.post("/admin/users/disable", {"account": admin.account}, htmx=True)
    assert response.status_code == 403 and "不能停用自己" in text(response)
    assert not accounts.get(admin.account).disabled


def test_actions_need_the_csrf_token(admin_browser, user):
    response = admin_browser.post("/admin/users/disable", {"account": user.account}, csrf=False)
    assert response.status_code == 400
    assert not accounts.get(user.account).disabled


def test_without_htmx_an_action_answers_with_the_whole_page(admin_browser, user):
    response = admin_browser.post("/admin/users/unlock", {"account": user.account})
    assert response.status_code == 200 and "<html" in text(response) and "已解除锁定" in text(response)


def test_unlock_from_the_command_line_names_no_admin(ctx, user):
    accounts.unlock(user.account, client=Client(ip="127.0.0.1"))
    assert "by " not in AuditEvent.get(AuditEvent.event == "user_unlocked").detail


# --- admins verify every login ---


def test_an_admin_is_never_let_in_by_a_trusted_device(new_browser, admin, clock):
    secret = bind_totp(admin)
    browser = new_browser()
    assert location(browser.login(admin.account, PASSWORD)) == "/login/verify"
    page = text(browser.get("/login/verify"))
    assert 'name="trust"' not in page and "管理员账号每次登录都需要二次验证" in page
    browser.post("/login/verify", {"method": "totp", "code": clock.next_code(secret), "trust": "1"})
    assert browser.cookie("portal_trust") is None
    assert not TrustedDevice.select().where(TrustedDevice.user == admin).exists()
    browser.post("/logout")
    assert location(browser.login(admin.account, PASSWORD)) == "/login/verify"


def test_a_trusted_device_of_someone_who_became_admin_no_longer_counts(new_browser, user, clock):
    secret = bind_totp(user)
    browser = new_browser()
    complete_login(browser, user.account, secret, clock, trust=True)
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/"  # trusted
    browser.post("/logout")
    user.role = "admin"
    user.save()
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"


# --- finding an account by the start of its address or name (item 14 of #9) ----------------------


def test_search_by_the_start_of_the_address_opens_the_one_match(admin_browser, user):
    response = admin_browser.get("/admin/users?q=ALI")
    assert response.status_code == 200 and user.account in text(response)
    assert 'data-field="status"' in text(response)  # one match: its panel at once


def test_search_by_the_start_of_a_name_lists_several(admin_browser, admin):
    accounts.create("lisi@mail.xamd.edu.cn", PASSWORD, name="李四")
    accounts.create("lisa@mail.xamd.edu.cn", PASSWORD, name="李莎")
    accounts.create("wangwu@mail.xamd.edu.cn", PASSWORD, name="王五")

    by_name = text(admin_browser.get("/admin/users?q=李"))
    by_address = text(admin_browser.get("/admin/users?q=lis"))

    for body in (by_name, by_address):
        assert "找到 2 个" in body and "lisa@mail.xamd.edu.cn" in body and "lisi@mail.xamd.edu.cn" in body
        assert "wangwu" not in body and "data-field" not in body
    assert "没有以“zz”开头的账号" in text(admin_browser.get("/admin/users?q=zz"))
    assert "找到" not in text(admin_browser.get("/admin/users?q=%25"))  # LIKE wildcards are literal


def test_a_locked_account_shows_the_lock_and_when_it_ends(admin_browser, new_browser, user, app):
    fail_logins(new_browser, user.account, int(app.config["THROTTLE_ACCOUNT_FAILURES"]))
    response = admin_browser.get(f"/admin/users?account={user.account}")
    assert field(response, "status").startswith("已锁定")
    assert re.search(r"密码错误过多,\d{4}-\d\d-\d\d \d\d:\d\d 自动解除", field(response, "locks"))
    unlocked = admin_browser.post("/admin/users/unlock", {"account": user.account}, htmx=True)
    assert field(unlocked, "status").startswith("正常") and 'data-field="locks"' not in text(unlocked)
