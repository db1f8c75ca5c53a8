"""/admin/users (用户支持): the account's page, its actions (each with a reason, audited "by <admin>"),
and who may do what: admin and helpdesk act, only admin changes roles, auditors and users are refused."""

from __future__ import annotations

import re

import pyotp
import pytest

from portal import crypto
from portal.directory import Principal, provision
from portal.models import AppPassword, AuditEvent, Factor, LoginSession, TrustedDevice, User
from portal.services import accounts, app_passwords, policy, throttle
from portal.services.client import Client
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

ADMIN = "it-admin@mail.xamd.edu.cn"
HELPDESK = "helpdesk@mail.xamd.edu.cn"
AUDITOR = "auditor@mail.xamd.edu.cn"
REASON = "工单 #4711"
ACTIONS = (  # endpoint, extra form fields: every one needs a reason
    ("unlock", {}),
    ("reset-2fa", {}),
    ("disable", {}),
    ("enable", {}),
    ("end-sessions", {}),
    ("trusted-devices/remove", {"device": "all"}),
    ("methods", {"method": "totp"}),
    ("force-binding", {"force": "on"}),
    ("role", {"role": "helpdesk"}),
)


def bind_totp(user) -> str:
    secret = pyotp.random_base32()
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret), label="iPhone")
    return secret


@pytest.fixture
def admin(ctx):
    return accounts.create(ADMIN, PASSWORD, name="信息中心", admin=True)


def staff_browser(new_browser, clock, account: str, role: str):
    staff = User.by_account(account) or accounts.create(account, PASSWORD)
    accounts.set_role(staff.account, role)
    browser = new_browser()
    complete_login(browser, staff.account, bind_totp(staff), clock)
    return browser


@pytest.fixture
def admin_browser(new_browser, admin, clock):
    return staff_browser(new_browser, clock, admin.account, "admin")


@pytest.fixture
def helpdesk_browser(new_browser, ctx, clock):
    return staff_browser(new_browser, clock, HELPDESK, "helpdesk")


@pytest.fixture
def victim(new_browser, user, clock):
    """The user, logged in on a trusted browser (a session and a trusted device to end)."""
    browser = new_browser()
    complete_login(browser, user.account, bind_totp(user), clock, trust=True)
    return browser


def field(response, name: str) -> str:
    """The text of one fact in the 用户支持 panel (data-field)."""
    return re.search(rf'data-field="{name}">(.*?)</dd>', text(response), re.S).group(1)


def act(browser, action: str, account: str, reason: str = REASON, htmx: bool = True, **fields):
    return browser.post(f"/admin/users/{action}", {"account": account, "reason": reason, **fields}, htmx=htmx)


def audited(event: str) -> AuditEvent:
    return AuditEvent.select().where(AuditEvent.event == event).order_by(AuditEvent.id.desc()).get()


def assert_audited(event: str, account: str, by: str = ADMIN) -> AuditEvent:
    row = audited(event)
    assert row.account == account and f"by {by}" in row.detail and f"reason: {REASON}" in row.detail, row.detail
    assert row.ip  # the admin's client
    return row


# --- who may do what ---


def test_a_plain_user_is_refused_the_page_and_every_action(browser, user):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    assert browser.get("/admin/users?account=" + user.account).status_code == 403
    for action, fields in ACTIONS:
        assert act(browser, action, user.account, htmx=False, **fields).status_code == 403, action
    assert not AuditEvent.select().where(AuditEvent.detail.contains(REASON)).exists()


def test_an_auditor_may_neither_see_nor_act_on_accounts(new_browser, user, clock):
    auditor = staff_browser(new_browser, clock, AUDITOR, "auditor")
    response = auditor.get("/admin/users?account=" + user.account)
    assert response.status_code == 403 and "您的角色无权访问此页面" in text(response)
    for action, fields in ACTIONS:
        assert act(auditor, action, user.account, htmx=False, **fields).status_code == 403, action
    assert not accounts.get(user.account).disabled and accounts.get(user.account).role == ""


def test_helpdesk_acts_on_accounts_but_cannot_change_roles(helpdesk_browser, user, victim):
    page = helpdesk_browser.get("/admin/users?account=" + user.account)
    assert page.status_code == 200 and 'data-action="sessions"' in text(page)
    assert 'data-action="role"' not in text(page)  # the role form is for admins only

    assert act(helpdesk_browser, "end-sessions", user.account).status_code == 200
    assert_audited("user_sessions_ended", user.account, by=HELPDESK)
    assert act(helpdesk_browser, "role", user.account, htmx=False, role="admin").status_code == 403
    refused = act(helpdesk_browser, "role", user.account, role="admin")  # htmx: a notice in the page's #flash
    assert refused.headers["HX-Retarget"] == "#flash" and "您的角色无权访问此页面" in text(refused)
    assert accounts.get(user.account).role == ""


@pytest.mark.parametrize("role", ["admin", "helpdesk", "auditor"])
def test_helpdesk_cannot_act_on_a_staff_account(helpdesk_browser, role):
    staff = accounts.create("staff@mail.xamd.edu.cn", PASSWORD)
    accounts.set_role(staff.account, role)
    page = helpdesk_browser.get(f"/admin/users?account={staff.account}")
    assert 'data-field="staff-only"' in text(page) and "data-action=" not in text(page)
    for action, fields in ACTIONS[:-1]:  # role: refused to helpdesk whatever the account
        response = act(helpdesk_browser, action, staff.account, **fields)
        assert response.status_code == 403 and "只能由管理员操作" in text(response), action
    assert not accounts.get(staff.account).disabled and accounts.get(staff.account).role == role


def test_an_admin_acts_on_a_staff_account(admin_browser):
    staff = accounts.create("staff@mail.xamd.edu.cn", PASSWORD)
    accounts.set_role(staff.account, "helpdesk")
    assert 'data-field="staff-only"' not in text(admin_browser.get(f"/admin/users?account={staff.account}"))
    assert act(admin_browser, "disable", staff.account).status_code == 200 and accounts.get(staff.account).disabled


def test_an_admin_sees_the_role_form(admin_browser, user):
    body = text(admin_browser.get("/admin/users?account=" + user.account))
    assert 'data-action="role"' in body and '<option value="none" selected>' in body


# --- finding an account ---


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


def test_a_directory_user_is_found_by_the_name_the_directory_gave(admin_browser):
    provision(Principal(account="zhangsan@mail.xamd.edu.cn", name="张三丰", directory_id="uuid-1"))
    response = admin_browser.get("/admin/users?q=张三")
    assert "zhangsan@mail.xamd.edu.cn" in text(response) and "目录" in field(response, "origin")


def test_looking_up_an_unknown_account_says_so(admin_browser):
    response = admin_browser.get("/admin/users?account=ghost@mail.xamd.edu.cn")
    assert response.status_code == 404 and "账号不存在" in text(response)


# --- the account's page ---


def test_the_page_shows_factors_app_passwords_sessions_and_devices_never_secrets(admin_browser, user, victim):
    _row, secret = app_passwords.create(user, "Foxmail", Client(ip="198.51.100.8"))
    assert app_passwords.authenticate(user.account, secret, "imap", "198.51.100.9").ok
    response = admin_browser.get(f"/admin/users?account={user.account.upper()}")
    body = text(response)
    assert response.status_code == 200 and field(response, "status") == "正常"
    assert "第三方 OTP" in field(response, "methods") and "无(普通用户)" in field(response, "role")
    factors = re.search(r'<table class="grid support-table" id="factors">(.*?)</table>', body, re.S).group(1)
    assert "iPhone" in factors and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", factors)
    passwords = re.search(r'id="app-passwords">(.*?)</table>', body, re.S).group(1)
    assert "Foxmail" in passwords and "IMAP" in passwords and "198.51.100.9" in passwords
    assert secret not in body and AppPassword.get(AppPassword.user == user).secret_hash not in body
    sessions = re.search(r'id="sessions">(.*?)</table>', body, re.S).group(1)
    assert sessions.count("<tr>") == 2  # the heading and the victim's one session
    devices = re.search(r'id="trusted-devices">(.*?)</table>', body, re.S).group(1)
    assert devices.count("<tr>") == 2
    assert TrustedDevice.get(TrustedDevice.user == user).token_hash not in body


def test_recent_events_carry_chinese_labels(admin_browser, user):
    accounts.unlock(user.account)
    response = admin_browser.get(f"/admin/users?account={user.account}")
    row = re.search(r'<tr data-event="user_unlocked">(.*?)</tr>', text(response), re.S).group(1)
    assert "<td>解除锁定</td>" in row and "<td>成功</td>" in row and ">user_unlocked<" not in row


def test_a_locked_account_shows_the_lock_and_when_it_ends(admin_browser, new_browser, user, app):
    for _ in range(int(app.config["THROTTLE_ACCOUNT_FAILURES"])):
        assert new_browser().login(user.account, "Wrong-horse-1").status_code == 401
    response = admin_browser.get(f"/admin/users?account={user.account}")
    assert field(response, "status").startswith("已锁定")
    assert re.search(r"密码错误过多,\d{4}-\d\d-\d\d \d\d:\d\d 自动解除", field(response, "locks"))
    unlocked = act(admin_browser, "unlock", user.account)
    assert field(unlocked, "status").startswith("正常") and 'data-field="locks"' not in text(unlocked)
    assert throttle.failures("password", user.account) == 0
    assert location(new_browser().login(user.account, PASSWORD)) == "/"
    assert_audited("user_unlocked", user.account)


# --- actions: a reason, the effect, the audit row ---


@pytest.mark.parametrize(("action", "fields"), ACTIONS, ids=[a for a, _ in ACTIONS])
def test_every_action_needs_a_reason_and_changes_nothing_without_one(admin_browser, user, victim, action, fields):
    before = AuditEvent.select().count()
    response = act(admin_browser, action, user.account, reason="   ", **fields)
    assert response.status_code == 400 and "请填写操作原因" in text(response)
    assert 'id="support"' in text(response) and "<html" not in text(response)  # the panel, with the error
    assert AuditEvent.select().count() == before
    unchanged = accounts.get(user.account)
    assert (unchanged.disabled, unchanged.role, unchanged.extra_methods, unchanged.force_2fa) == (False, "", "", False)
    assert Factor.select().where(Factor.user == user).count() == 1
    assert location(victim.get("/")) == ""  # still signed in


def test_a_reason_longer_than_200_characters_is_refused(admin_browser, user):
    response = act(admin_browser, "unlock", user.account, reason="x" * 201)
    assert response.status_code == 400 and "最多 200 个字符" in text(response)


def test_reset_2fa_removes_the_factors_and_ends_the_users_sessions(admin_browser, user, victim):
    response = act(admin_browser, "reset-2fa", user.account)
    assert response.status_code == 200 and "已重置二次验证" in text(response)
    assert not Factor.select().where(Factor.user == user).exists()
    assert location(victim.get("/")) == "/login"
    assert_audited("2fa_reset", user.account)


def test_disable_and_enable_an_account(admin_browser, new_browser, user, victim):
    response = act(admin_browser, "disable", user.account)
    assert "账号已停用" in text(response) and field(response, "status") == "已停用"
    assert location(victim.get("/")) == "/login"
    assert new_browser().login(user.account, PASSWORD).status_code == 401
    assert app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9").reason == "disabled"
    assert_audited("user_disabled", user.account)
    assert 'data-action="enable"' in text(response) and 'data-action="disable"' not in text(response)

    act(admin_browser, "enable", user.account)
    assert_audited("user_enabled", user.account)
    assert location(new_browser().login(user.account, PASSWORD)) == "/login/verify"


def test_an_admin_cannot_disable_their_own_account(admin_browser, admin):
    assert 'data-action="disable"' not in text(admin_browser.get(f"/admin/users?account={admin.account}"))
    response = act(admin_browser, "disable", admin.account)
    assert response.status_code == 403 and "不能停用自己" in text(response) and 'id="support"' in text(response)
    assert not accounts.get(admin.account).disabled


def test_end_sessions_signs_the_user_out_everywhere(admin_browser, new_browser, user, victim, clock):
    other = new_browser()
    assert location(other.login(user.account, PASSWORD)) == "/login/verify"  # half logged in: ends too
    response = act(admin_browser, "end-sessions", user.account)
    assert response.status_code == 200 and "已退出" in text(response)
    assert location(victim.get("/")) == "/login" and location(other.get("/")) == "/login"
    assert not LoginSession.select().where((LoginSession.user == user) & LoginSession.ended_at.is_null()).exists()
    assert "count=" in assert_audited("user_sessions_ended", user.account).detail
    assert TrustedDevice.select().where(TrustedDevice.user == user, TrustedDevice.revoked_at.is_null()).count() == 1


def test_ending_ones_own_sessions_keeps_the_current_one(admin_browser, new_browser, admin, clock):
    elsewhere = new_browser()
    complete_login(elsewhere, admin.account, _secret(admin), clock)
    assert act(admin_browser, "end-sessions", admin.account).status_code == 200
    assert location(elsewhere.get("/admin/users")) == "/login"
    assert admin_browser.get("/admin/users").status_code == 200


def _secret(user) -> str:
    return crypto.decrypt(Factor.get(Factor.user == user).secret)


def test_remove_one_trusted_device_or_all(admin_browser, new_browser, user, victim, clock):
    second = new_browser()
    complete_login(second, user.account, _secret(user), clock, trust=True)
    devices = list(TrustedDevice.select().where(TrustedDevice.user == user).order_by(TrustedDevice.id))
    assert len(devices) == 2

    response = act(admin_browser, "trusted-devices/remove", user.account, device=str(devices[0].id))
    assert response.status_code == 200 and "已移除该信任设备" in text(response)
    assert TrustedDevice.get_by_id(devices[0].id).revoked_at is not None
    assert TrustedDevice.get_by_id(devices[1].id).revoked_at is None
    assert f"id={devices[0].id}" in assert_audited("trusted_device_revoked", user.account).detail

    response = act(admin_browser, "trusted-devices/remove", user.account, device="all")
    assert "已移除 1 台信任设备" in text(response)
    assert TrustedDevice.get_by_id(devices[1].id).revoked_at is not None
    assert_audited("trusted_devices_revoked", user.account)
    assert location(victim.get("/")) == ""  # the sessions stay; the next login asks the second step


@pytest.mark.parametrize("device", ["999999", "abc", "١"])
def test_removing_a_device_that_is_not_the_users_says_so(admin_browser, user, victim, device):
    response = act(admin_browser, "trusted-devices/remove", user.account, device=device)
    assert response.status_code in (400, 404) and "该设备不存在或已移除" in text(response)
    assert TrustedDevice.get(TrustedDevice.user == user).revoked_at is None


def test_enable_methods_for_one_user(admin_browser, user):
    page = text(admin_browser.get(f"/admin/users?account={user.account}"))
    choices = re.findall(r'name="method" value="(\w+)"', page)
    assert "totp" in choices and "app" not in choices and "wechat" not in choices  # app, wechat: for everyone

    response = admin_browser.post(
        "/admin/users/methods", {"account": user.account, "reason": REASON, "method": ["totp", "email"]}, htmx=True
    )
    assert response.status_code == 200 and accounts.get(user.account).extra_methods == "totp,email"
    assert "第三方 OTP" in field(response, "extra-methods")
    assert_audited("user_policy_changed", user.account)

    refused = act(admin_browser, "methods", user.account, method="app")
    assert refused.status_code == 400 and accounts.get(user.account).extra_methods == "totp,email"
    act(admin_browser, "methods", user.account)  # nothing ticked: none
    assert accounts.get(user.account).extra_methods == ""


def test_a_method_later_enabled_for_everyone_stays_enabled_for_the_user(admin_browser, user):
    accounts.set_policy(user.account, methods="totp,email")
    policy.set_value("enabled_methods", "app,wechat,totp")
    act(admin_browser, "methods", user.account)  # the form no longer offers totp
    assert accounts.get(user.account).extra_methods == "totp"


@pytest.mark.parametrize("mode", ["listed", "off", "all"])
def test_force_binding_lists_the_user_and_says_when_it_counts(admin_browser, user, mode):
    policy.set_value("force_2fa", mode)
    response = act(admin_browser, "force-binding", user.account, force="on")
    assert response.status_code == 200 and accounts.get(user.account).force_2fa
    assert_audited("user_policy_changed", user.account)
    assert "已列入名单" in field(response, "force")
    assert ("名单暂不生效" in field(response, "force")) == (mode != "listed")
    act(admin_browser, "force-binding", user.account)
    assert not accounts.get(user.account).force_2fa


def test_an_admin_gives_and_takes_a_role(admin_browser, user):
    response = act(admin_browser, "role", user.account, role="helpdesk")
    assert response.status_code == 200 and accounts.get(user.account).role == "helpdesk"
    assert "服务台" in field(response, "role")
    row = assert_audited("user_role_changed", user.account)
    assert "none -> helpdesk" in row.detail
    act(admin_browser, "role", user.account, role="none")
    assert accounts.get(user.account).role == ""


def test_an_unknown_role_and_taking_ones_own_admin_role_are_refused(admin_browser, admin, user):
    response = act(admin_browser, "role", user.account, role="root")
    assert response.status_code == 400 and "未知的角色" in text(response)
    response = act(admin_browser, "role", admin.account, role="none")
    assert response.status_code == 403 and "不能取消自己的管理员角色" in text(response)
    assert accounts.get(admin.account).role == "admin"


def test_actions_need_the_csrf_token(admin_browser, user):
    form = {"account": user.account, "reason": REASON}
    assert admin_browser.post("/admin/users/disable", form, csrf=False).status_code == 400
    assert not accounts.get(user.account).disabled


def test_without_htmx_an_action_answers_with_the_whole_page(admin_browser, user):
    response = admin_browser.post("/admin/users/unlock", {"account": user.account, "reason": REASON})
    assert response.status_code == 200 and "<html" in text(response) and "已解除锁定" in text(response)


def test_an_action_on_an_unknown_account_says_so(admin_browser):
    response = act(admin_browser, "unlock", "ghost@mail.xamd.edu.cn")
    assert response.status_code == 404 and "账号不存在" in text(response)
