"""Who may open each /admin route: anonymous, a user, a half-logged-in admin, each role, an admin
without a second factor; every POST also needs a fresh second step (step-up)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import AuditEvent, LoginSession, User, utcnow
from portal.services import accounts, roles
from tests.conftest import PASSWORD
from tests.views.support import complete_login, location
from tests.views.test_admin import bind_totp

ALL = {roles.ADMIN, roles.HELPDESK, roles.AUDITOR}
READERS = {roles.ADMIN, roles.AUDITOR}
SUPPORT = {roles.ADMIN, roles.HELPDESK}
# Every admin endpoint and the roles that may call it. A new route fails test_every_route_is_listed
# until it is added here: its access is then decided, not inherited by accident.
ADMIN_ONLY = {roles.ADMIN}
EXPECTED = {
    "admin.index": ALL,  # helpdesk is sent on to 用户支持
    "admin.audit_log": READERS,
    "admin.policy_page": ADMIN_ONLY,
    "admin.policy_save": ADMIN_ONLY,
    "admin.user_support": SUPPORT,
    "admin.unlock": SUPPORT,
    "admin.reset_2fa": SUPPORT,
    "admin.disable": SUPPORT,
    "admin.enable": SUPPORT,
    "admin.end_sessions": SUPPORT,
    "admin.remove_trusted_devices": SUPPORT,
    "admin.extra_methods": SUPPORT,  # for this user only: helping them, not policy
    "admin.force_binding": SUPPORT,
    "admin.issue_temporary_code": SUPPORT,
    "admin.revoke_temporary_code": SUPPORT,
    "admin.set_role": ADMIN_ONLY,
}
STAFF = {role: f"{role}-staff@mail.xamd.edu.cn" for role in roles.ROLES}


def admin_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every /admin route, path variables filled with a placeholder."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", "x").replace(f"<int:{argument}>", "1")
        found.extend((rule.endpoint, method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return found


def call(browser, method: str, path: str):
    return browser.get(path) if method == "GET" else browser.post(path, {"account": "nobody@mail.xamd.edu.cn"})


@pytest.fixture
def staff(ctx):
    """One account per role, each with 第三方 OTP bound (staff must bind), and their TOTP secrets."""
    secrets = {}
    for role, account in STAFF.items():
        user = accounts.create(account, PASSWORD, name=role)
        accounts.set_role(account, role)
        secrets[role] = bind_totp(user)
    return secrets


def test_every_route_is_listed(app):
    assert {endpoint for endpoint, _, _ in admin_routes(app)} == set(EXPECTED)


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_reaches_only_its_routes(app, new_browser, staff, clock, role):
    browser = new_browser()
    complete_login(browser, STAFF[role], staff[role], clock)
    for endpoint, method, path in admin_routes(app):
        status = call(browser, method, path).status_code
        if role in EXPECTED[endpoint]:
            assert status != 403, (endpoint, method, role)
        else:
            assert status == 403, (endpoint, method, role, status)


def test_a_user_and_the_signed_out_are_refused_everywhere(app, new_browser, user):
    signed_in = new_browser()
    assert location(signed_in.login(user.account, PASSWORD)) == "/"
    for endpoint, method, path in admin_routes(app):
        assert call(signed_in, method, path).status_code == 403, endpoint
        assert location(call(new_browser(), method, path)) == "/login", endpoint


def test_half_logged_in_staff_are_sent_to_the_second_step(app, new_browser, staff):
    browser = new_browser()
    assert location(browser.login(STAFF[roles.ADMIN], PASSWORD)) == "/login/verify"
    for endpoint, method, path in admin_routes(app):
        assert location(call(browser, method, path)) == "/login/verify", endpoint


def test_an_admin_without_a_second_factor_must_bind_first(app, new_browser, ctx):
    accounts.create("unbound-admin@mail.xamd.edu.cn", PASSWORD)
    accounts.set_role("unbound-admin@mail.xamd.edu.cn", roles.ADMIN)
    browser = new_browser()
    assert location(browser.login("unbound-admin@mail.xamd.edu.cn", PASSWORD)) == "/settings/security/2fa"
    for endpoint, method, path in admin_routes(app):
        assert location(call(browser, method, path)) == "/settings/security/2fa", endpoint


def test_a_post_after_the_step_up_window_asks_for_the_second_step_again(new_browser, staff, clock, user):
    browser = new_browser()
    complete_login(browser, STAFF[roles.ADMIN], staff[roles.ADMIN], clock)
    LoginSession.update(verified_at=utcnow() - timedelta(minutes=11)).execute()
    accounts.set_disabled(user.account, True)
    response = browser.post("/admin/users/enable", {"account": user.account, "reason": "工单 7"})
    assert location(response) == "/settings/security/verify/admin"
    assert User.by_account(user.account).disabled, "nothing changed before the fresh verification"
    page = browser.get("/settings/security/verify/admin")
    assert page.status_code == 200 and "管理操作前" in page.get_data(as_text=True)
    # Verified again: the same change goes through.
    response = browser.post(
        "/settings/security/verify/admin", {"via": "totp", "code": clock.next_code(staff[roles.ADMIN])}
    )
    assert location(response) == "/admin"
    browser.post("/admin/users/enable", {"account": user.account, "reason": "工单 7"})
    assert not User.by_account(user.account).disabled


def test_a_post_without_csrf_is_refused(app, new_browser, staff, clock, user):
    app.config["WTF_CSRF_ENABLED"] = True
    browser = new_browser()
    complete_login(browser, STAFF[roles.ADMIN], staff[roles.ADMIN], clock)
    accounts.set_disabled(user.account, True)
    response = browser.client.post("/admin/users/enable", data={"account": user.account, "reason": "工单 7"})
    assert response.status_code == 400
    assert User.by_account(user.account).disabled


def test_role_changes_are_audited_and_nobody_demotes_themselves(ctx):
    admin = accounts.create("boss@mail.xamd.edu.cn", PASSWORD)
    accounts.set_role(admin.account, roles.ADMIN)
    helper = accounts.create("desk@mail.xamd.edu.cn", PASSWORD)
    assert accounts.set_role(helper.account, roles.HELPDESK, by=admin, reason="工单 42").role == roles.HELPDESK
    row = AuditEvent.select().where(AuditEvent.event == "user_role_changed").order_by(AuditEvent.id.desc()).get()
    assert (row.account, row.detail) == (helper.account, "none -> helpdesk; by boss@mail.xamd.edu.cn; reason: 工单 42")
    with pytest.raises(Exception, match="不能取消自己的管理员角色"):
        accounts.set_role(admin.account, roles.AUDITOR, by=admin)
    assert User.by_account(admin.account).role == roles.ADMIN
    with pytest.raises(Exception, match="未知的角色"):
        accounts.set_role(helper.account, "root")
