"""策略 (/admin/policy): only admins see and change the policy; a save is validated as a whole, takes effect
at once and leaves one audit row per changed value with its old and new value."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, Setting, utcnow
from portal.services import accounts, policy, trust
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

ADMIN = "policy-admin@mail.xamd.edu.cn"
PAGE = "/admin/policy"


def staff_browser(new_browser, clock, account: str, role: str):
    user = accounts.create(account, PASSWORD, name="信息中心")
    accounts.set_role(user.account, role)
    secret = pyotp.random_base32()
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
    browser = new_browser()
    complete_login(browser, user.account, secret, clock)
    return browser


@pytest.fixture
def admin_browser(ctx, new_browser, clock):
    return staff_browser(new_browser, clock, ADMIN, "admin")


def changes() -> list[str]:
    rows = AuditEvent.select().where(AuditEvent.event == "policy_changed").order_by(AuditEvent.id)
    return [row.detail for row in rows]


def error_of(response, key: str) -> str:
    match = re.search(rf'data-error="{key}">(.*?)</p>', text(response), re.S)
    return match.group(1) if match else ""


def field_value(response, key: str) -> str:
    return re.search(rf'name="{key}"[^>]*value="([^"]*)"', text(response)).group(1)


# --- who may ---


def test_the_admin_sees_every_group_with_the_current_values(admin_browser, app):
    response = admin_browser.get(PAGE)
    body = text(response)
    assert response.status_code == 200
    for group in ("验证方式", "强制绑定", "信任网络与设备", "锁定", "安全验证", "支持联系方式"):
        assert f"<legend>{group}</legend>" in body
    assert field_value(response, "lockout_account_failures") == str(app.config["THROTTLE_ACCOUNT_FAILURES"])
    assert field_value(response, "trusted_device_days") == str(app.config["TRUSTED_DEVICE_DAYS"])
    assert field_value(response, "support_contact") == "网络信息化中心,电话 85603000 转 8012"
    assert 'href="/admin/policy" aria-current="page"' in body  # 策略 in the side navigation


@pytest.mark.parametrize("role", ["helpdesk", "auditor"])
def test_other_console_roles_may_not_see_or_change_it(ctx, new_browser, clock, role):
    browser = staff_browser(new_browser, clock, f"{role}@mail.xamd.edu.cn", role)
    assert browser.get(PAGE).status_code == 403
    assert browser.post(PAGE, {"force_2fa": "all"}).status_code == 403
    assert "/admin/policy" not in text(browser.get("/admin/users"))  # not offered in the navigation
    assert policy.get("force_2fa") == "off" and not changes()


def test_a_user_and_a_visitor_may_not(browser, user, new_browser):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    assert browser.get(PAGE).status_code == 403
    assert browser.post(PAGE, {"force_2fa": "all"}).status_code == 403
    visitor = new_browser()
    assert location(visitor.get(PAGE)) == "/login"
    assert location(visitor.post(PAGE, {"force_2fa": "all"})) == "/login"
    assert policy.get("force_2fa") == "off" and not changes()


def test_saving_needs_a_fresh_second_step_within_the_policys_window(admin_browser, monkeypatch):
    assert admin_browser.post(PAGE, {"step_up_minutes": "2"}).status_code == 200
    later = utcnow() + timedelta(minutes=3)  # the default 10 minutes would still allow it
    monkeypatch.setattr("portal.services.sessions.utcnow", lambda: later)
    assert location(admin_browser.post(PAGE, {"force_2fa": "all"})) == "/settings/security/verify/admin"
    assert policy.get("force_2fa") == "off"


# --- saving ---


def test_a_save_applies_at_once_and_audits_old_and_new(admin_browser):
    form = {
        "force_2fa": "all",
        "force_2fa_snoozes": "3",
        "trusted_device_days": "7",
        "trusted_networks": "10.0.0.0/8\n192.168.1.0/24",
        "support_contact": "  信息中心  电话 1234 ",
        "enabled_methods": ["", "app", "totp"],
        "lockout_account_failures": "10",  # unchanged: no audit row
    }
    response = admin_browser.post(PAGE, form)
    assert response.status_code == 200 and "已保存 6 项修改" in text(response)
    assert policy.get("force_2fa") == "all"
    assert policy.get("enabled_methods") == "app,totp"
    assert policy.in_trusted_network("192.168.1.7")
    assert trust.lifetime().days == 7
    assert policy.support_contact() == "信息中心 电话 1234"
    assert "信息中心 电话 1234" in text(admin_browser.get("/"))  # every page's footer
    by = f"by {ADMIN}"
    assert sorted(changes()) == sorted(
        [
            f"force_2fa: off -> all; {by}",
            f"force_2fa_snoozes: 0 -> 3; {by}",
            f"trusted_device_days: 30 -> 7; {by}",
            f'trusted_networks: "" -> 10.0.0.0/8,192.168.1.0/24; {by}',
            f"support_contact: 网络信息化中心,电话 85603000 转 8012 -> 信息中心 电话 1234; {by}",
            f"enabled_methods: app,wechat -> app,totp; {by}",
        ]
    )
    assert AuditEvent.get(AuditEvent.event == "policy_changed").ip  # who, from where
    shown = text(admin_browser.get(PAGE))
    assert "10.0.0.0/8\n192.168.1.0/24</textarea>" in shown


def test_unchecking_every_method_is_a_change(admin_browser):
    admin_browser.post(PAGE, {"admin_methods": ["", "totp"]})
    admin_browser.post(PAGE, {"admin_methods": [""]})
    assert policy.get("admin_methods") == ""


def test_nothing_changed_writes_nothing(admin_browser):
    response = admin_browser.post(PAGE, {"force_2fa": "off", "step_up_minutes": "10"})
    assert "没有修改" in text(response) and not changes() and Setting.select().count() == 0


@pytest.mark.parametrize(
    ("form", "key", "message"),
    [
        ({"trusted_device_days": "0"}, "trusted_device_days", "1 到 90"),
        ({"trusted_device_days": "91"}, "trusted_device_days", "1 到 90"),
        ({"trusted_device_days": "７"}, "trusted_device_days", "整数"),
        ({"step_up_minutes": "61"}, "step_up_minutes", "1 到 60"),
        ({"lockout_window_minutes": "4"}, "lockout_window_minutes", "5 到 60"),
        ({"lockout_account_failures": "2"}, "lockout_account_failures", "3 到 50"),
        ({"lockout_account_failures": "30", "lockout_window_minutes": "15"}, "lockout_account_failures", "100 次"),
        ({"lockout_ip_failures": "5"}, "lockout_ip_failures", "不能少于"),
        ({"trusted_networks": "10.0.0.1/8"}, "trusted_networks", "不是有效的网段"),
        ({"trusted_networks": "10.0.0.0/7"}, "trusted_networks", "范围过大"),
        ({"campus_networks": "not-a-net 校园网"}, "campus_networks", "不是有效的网段"),
        ({"enabled_methods": ["", "fax"]}, "enabled_methods", "未知的验证方式"),
        ({"force_2fa": "sometimes"}, "force_2fa", "请从给出的选项中选择"),
        ({"force_2fa_deadline": "2026-02-30"}, "force_2fa_deadline", "格式"),
        ({"force_2fa_deadline": "31.12.2099"}, "force_2fa_deadline", "格式"),
        ({"force_2fa_deadline": "2000-01-01"}, "force_2fa_deadline", "早于今天"),
        ({"force_2fa_snoozes": "-1"}, "force_2fa_snoozes", "0 到 20"),
        ({"support_contact": "   "}, "support_contact", "请填写"),
        ({"support_contact": "电" * 201}, "support_contact", "200"),
    ],
)
def test_bad_values_are_shown_beside_their_field_and_nothing_is_saved(admin_browser, form, key, message):
    response = admin_browser.post(PAGE, {**form, "force_2fa_snoozes": form.get("force_2fa_snoozes", "2")})
    assert response.status_code == 400
    assert message in error_of(response, key), text(response)
    assert "策略未保存" in text(response)
    assert Setting.select().count() == 0 and not changes()  # all or nothing: the valid snoozes too


def test_the_form_keeps_what_was_typed_after_an_error(admin_browser):
    response = admin_browser.post(PAGE, {"trusted_device_days": "abc", "step_up_minutes": "20"})
    assert field_value(response, "trusted_device_days") == "abc"
    assert field_value(response, "step_up_minutes") == "20"
    assert policy.number("step_up_minutes") == 10


def test_lockout_values_are_checked_together(admin_browser):
    # 20 failures per 15 minutes is 80 an hour; then a 10-minute window would make it 120.
    assert admin_browser.post(PAGE, {"lockout_account_failures": "20"}).status_code == 200
    response = admin_browser.post(PAGE, {"lockout_window_minutes": "10"})
    assert response.status_code == 400 and "100 次" in error_of(response, "lockout_account_failures")
    assert policy.number("lockout_window_minutes") == 15
    ok = admin_browser.post(PAGE, {"lockout_window_minutes": "12", "lockout_ip_failures": "20"})
    assert ok.status_code == 200 and policy.number("lockout_window_minutes") == 12
