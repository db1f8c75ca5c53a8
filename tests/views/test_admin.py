"""/admin: reports, for admins with a full session only (用户支持: test_admin_users.py)."""

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

    response = admin_browser.post("/admin/users/unlock", {"account": user.account, "reason": "工单 7"}, htmx=True)
    assert response.status_code == 200 and "已解除锁定" in text(response)
    assert throttle.failures("password", user.account) == 0
    assert location(new_browser().login(user.account, PASSWORD)) == "/"
    event = AuditEvent.get(AuditEvent.event == "user_unlocked")
    assert event.account == user.account and f"by {ADMIN}" in event.detail and event.ip


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
