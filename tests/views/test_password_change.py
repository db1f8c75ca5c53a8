"""修改密码 (/settings/security/password) for a local account: the current password, the new one twice,
the rules, throttling, and the end of the user's other sessions and trusted devices."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, User
from portal.services import password_change, passwords, sessions, throttle, trust
from portal.services.client import Client
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

PAGE = "/settings/security/password"
NEW = "Purple-river-2031"


@pytest.fixture
def logged_in(browser, user):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    return browser


def change(browser, current=PASSWORD, new=NEW, repeat=None):
    return browser.post(PAGE, {"current": current, "new": new, "repeat": new if repeat is None else repeat})


def test_the_page_asks_for_the_current_and_the_new_password_twice(logged_in):
    page = text(logged_in.get(PAGE))
    assert "修改密码" in page and 'name="current"' in page and 'name="new"' in page and 'name="repeat"' in page
    assert 'aria-current="page">修改密码' in page


def test_a_change_ends_the_other_sessions_and_trusted_devices(logged_in, new_browser, user, totp_secret, clock):
    other = new_browser()
    complete_login(other, user.account, totp_secret, clock, trust=True)
    assert len(trust.active(user)) == 1

    response = change(logged_in)

    assert response.status_code == 200 and "密码已修改" in text(response)
    assert passwords.verify(User.get_by_id(user.id).password_hash, NEW)
    assert logged_in.get("/").status_code == 200  # this browser stays
    assert location(other.get("/")) == "/login" and trust.active(user) == []
    assert AuditEvent.get(AuditEvent.event == "password_changed").detail == "by the user"


@pytest.mark.parametrize(
    "new, repeat, complaint",
    [
        ("Short-1", None, "至少 10 个字符"),
        ("alice-is-my-name-1", None, "不能包含账号名"),
        ("qwertyuiop", None, "过于常见"),
        ("1234567890", None, "过于常见"),
        (NEW, "Purple-river-2030", "两次输入的新密码不一致"),
    ],
)
def test_the_new_password_must_follow_the_rules(logged_in, user, new, repeat, complaint):
    response = change(logged_in, new=new, repeat=repeat)
    assert response.status_code == 400 and complaint in text(response)
    assert passwords.verify(User.get_by_id(user.id).password_hash, PASSWORD)


def test_a_wrong_current_password_is_a_failed_attempt(logged_in, user):
    response = change(logged_in, current="Wrong-horse-9")
    assert response.status_code == 401 and "当前密码错误" in text(response)
    assert throttle.failures("password", user.account) == 1
    assert passwords.verify(User.get_by_id(user.id).password_hash, PASSWORD)


@pytest.mark.app_config(
    PASSWORD_BACKEND="imap",
    IMAP_PASSWORD_URL="imap://127.0.0.1:1",
    PASSWORD_CHANGE_URL="https://id.xamd.edu.cn/password",
)
def test_a_directory_account_is_sent_to_where_its_password_lives(browser, user):
    User.update(password_hash="").where(User.id == user.id).execute()  # a directory account
    browser.client.set_cookie(SESSION_COOKIE, sessions.start(User.get_by_id(user.id), sessions.FULL, Client()))
    page = text(browser.get(PAGE))
    assert "由学校统一身份认证管理" in page and 'href="https://id.xamd.edu.cn/password"' in page
    assert 'name="current"' not in page
    refused = change(browser)
    assert refused.status_code == 403


def test_the_common_list_has_ten_thousand_passwords():
    assert len(password_change._common()) > 9_000  # lower-cased: a few duplicates fold together
    assert "password" in password_change._common() and "Purple-river-2031".lower() not in password_change._common()
