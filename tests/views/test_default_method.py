"""默认验证方式 (#14 item 5): the user picks the bound method the second step opens with; 更换验证方式
still lists every bound method; a default that is no longer bound falls back to the recommended order."""

from __future__ import annotations

import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, User
from portal.services import approvals
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import PAGE, complete_login, location

TOTP_PAGE = "打开您的身份验证器 App"
EMAIL_PAGE = "发送到您的备用邮箱 a***p@example.org"


@pytest.fixture
def two_factors(user, totp_secret):
    Factor.create(user=user, method="email", secret=crypto.encrypt("alice.backup@example.org"))
    return totp_secret


def second_step(browser, user) -> str:
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    return text(browser.get("/login/verify"))


def default_form(page: str) -> str:
    return page[page.index('class="default-method"') :].split("</form>", 1)[0]


def test_the_second_step_opens_with_the_chosen_method(browser, user, two_factors, clock):
    complete_login(browser, user.account, two_factors, clock)
    form = default_form(text(browser.get(PAGE)))
    assert "默认验证方式" in form and 'value="totp"' in form and 'value="email"' in form
    assert 'value="recovery"' not in form  # 备用码 stay the last resort
    assert TOTP_PAGE in second_step(browser, user)  # the recommended order: 第三方 OTP before 备用邮箱

    complete_login(browser, user.account, two_factors, clock)
    saved = browser.post(f"{PAGE}/default", {"method": "email"}, htmx=True)
    assert saved.status_code == 200 and "已保存" in text(saved)
    assert 'value="email" selected' in default_form(text(saved))
    assert User.get_by_id(user.id).default_method == "email"
    audited = AuditEvent.select().where(AuditEvent.event == "default_method_set", AuditEvent.method == "email")
    assert audited.count() == 1

    page = second_step(browser, user)
    assert EMAIL_PAGE in page
    switch = page[page.index("更换验证方式") :]
    assert "?method=totp" in switch  # 更换验证方式 still offers the others
    assert TOTP_PAGE in text(browser.get("/login/verify?method=totp"))


def test_back_to_the_recommended_order(browser, user, two_factors, clock):
    complete_login(browser, user.account, two_factors, clock)
    browser.post(f"{PAGE}/default", {"method": "email"}, htmx=True)
    assert "已保存" in text(browser.post(f"{PAGE}/default", {"method": ""}, htmx=True))
    assert User.get_by_id(user.id).default_method == ""
    assert TOTP_PAGE in second_step(browser, user)


@pytest.mark.parametrize("method", ["wechat", "recovery", "nonsense", "x" * 40])
def test_only_a_bound_method_can_be_the_default(browser, user, two_factors, clock, method):
    complete_login(browser, user.account, two_factors, clock)
    refused = browser.post(f"{PAGE}/default", {"method": method}, htmx=True)
    assert refused.status_code == 400 and "该验证方式未绑定" in text(refused)
    assert User.get_by_id(user.id).default_method == ""


def test_an_unbound_default_falls_back(browser, user, two_factors, clock):
    complete_login(browser, user.account, two_factors, clock)
    browser.post(f"{PAGE}/default", {"method": "email"}, htmx=True)
    Factor.delete().where((Factor.user == user.id) & (Factor.method == "email")).execute()
    assert TOTP_PAGE in second_step(browser, user)


def test_one_bound_method_needs_no_choice(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    assert "默认验证方式" not in text(browser.get(PAGE))


def test_the_setting_needs_a_full_session(browser, user, two_factors):
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"  # half logged in
    response = browser.post(f"{PAGE}/default", {"method": "email"})
    assert response.status_code in (302, 303) and User.get_by_id(user.id).default_method == ""


def test_preferred_honours_a_usable_default_only():
    assert approvals.preferred(["totp", "email"], "email") == "email"
    assert approvals.preferred(["totp", "email"], "wechat") == "totp"
    assert approvals.preferred(["totp", "recovery"], "recovery") == "totp"
    assert approvals.preferred(["totp", "email"]) == "totp"
