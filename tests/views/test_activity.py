"""登录记录 (/settings/security/activity): full page, htmx fragments, pagination, only this account's rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.models import AuditEvent, utcnow
from portal.services import accounts, app_passwords, mail_logins
from portal.services.client import Client
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.oidc_support import RP_CALLBACK, RelyingParty, authorize
from tests.views.support import complete_login, is_fragment

PAGE = "/settings/security/activity"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
GUANGDONG = "113.108.81.189"


@pytest.fixture(autouse=True)
def empty_mail_buffer():
    mail_logins.buffer.take()
    yield
    mail_logins.buffer.take()


@pytest.fixture
def signed_in(browser, user, totp_secret, clock):
    browser.client.environ_base.update({"REMOTE_ADDR": GUANGDONG, "HTTP_USER_AGENT": CHROME})
    complete_login(browser, user.account, totp_secret, clock)
    return browser


def rows(body: str) -> list[str]:
    return re.findall(r"<tr data-source=\"(\w+)\" data-result=\"(\w+)\">", body)


def more_link(body: str) -> str | None:
    match = re.search(r'href="([^"]*before=[^"]*)"', body)
    return match.group(1).replace("&amp;", "&") if match else None


def test_the_page_lists_the_login_with_its_place_and_browser(signed_in):
    response = signed_in.get(PAGE)
    body = text(response)
    assert response.status_code == 200 and "<html" in body and "登录记录" in body
    assert rows(body) == [("web", "ok")]
    assert GUANGDONG in body and "广东省 深圳市" in body and "Chrome 120 · Windows" in body
    assert "第三方 OTP" in body and "成功" in body
    assert more_link(body) is None


def test_refusals_are_listed(signed_in, user):
    AuditEvent.create(user=user, account=user.account, event="login_password", outcome="fail", ip="202.106.0.20")
    body = text(signed_in.get(PAGE))
    assert ("web", "fail") in rows(body) and "密码错误" in body and "北京市" in body


def test_single_sign_on_into_an_app_is_listed(signed_in, user):
    AuditEvent.create(user=user, account=user.account, event="sso_authorized", ip="10.0.0.5", detail="网页邮箱")
    body = text(signed_in.get(PAGE))
    assert "单点登录 · 网页邮箱" in body and rows(body)[0] == ("web", "ok")


def test_a_real_single_sign_on_is_listed(app, signed_in):
    webmail = RelyingParty(app, "网页邮箱", RP_CALLBACK)
    authorize(signed_in, webmail)
    assert "单点登录 · 网页邮箱" in text(signed_in.get(PAGE))


def test_pagination_with_htmx(signed_in, user):
    base = utcnow() - timedelta(days=1)
    for minute in range(30):
        AuditEvent.create(
            user=user,
            account=user.account,
            event="login_verify",
            method="totp",
            outcome="fail",
            ip="10.0.0.1",
            created_at=base - timedelta(minutes=minute),
        )
    first = text(signed_in.get(PAGE))
    assert len(rows(first)) == 20 and "加载更多" in first
    link = more_link(first)
    fragment = signed_in.get(link, htmx=True)
    assert is_fragment(fragment) and fragment.status_code == 200
    second = text(fragment)
    assert len(rows(second)) == 11 and more_link(second) is None  # 31 rows in all: the login and 30 refusals
    assert "内网" in second
    assert "<html" in text(signed_in.get(link))  # the same link without htmx: a whole page


def test_older_than_ninety_days_is_not_shown(signed_in, user):
    old = utcnow() - timedelta(days=91)
    AuditEvent.create(user=user, account=user.account, event="login_complete", ip="8.8.8.8", created_at=old)
    assert "美国" not in text(signed_in.get(PAGE))


def test_another_users_rows_are_never_shown(signed_in, user):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    AuditEvent.create(user=bob, account=bob.account, event="login_complete", ip="8.8.8.8")
    assert app_passwords.authenticate(bob.account, PASSWORD, "imap", "8.8.4.4").ok
    mail_logins.flush()
    body = text(signed_in.get(PAGE))
    assert "8.8.8.8" not in body and "8.8.4.4" not in body and "美国" not in body
    assert rows(body) == [("web", "ok")]


def test_a_polling_mail_client_is_one_row(signed_in, user):
    _row, password = app_passwords.create(user, "Foxmail", Client())
    for _ in range(12):
        assert app_passwords.authenticate(user.account, password, "imap", "202.106.0.20").ok
    mail_logins.flush()
    body = text(signed_in.get(PAGE))
    assert rows(body) == [("mail", "ok"), ("web", "ok")]
    assert "IMAP · 12 次" in body and "IMAP 客户端" in body and "北京市" in body


def test_a_mail_client_refused_for_want_of_an_app_password(signed_in, user):
    for _ in range(3):
        assert not app_passwords.authenticate(user.account, PASSWORD, "pop3", "202.106.0.20").ok  # has a factor
    mail_logins.flush()
    body = text(signed_in.get(PAGE))
    assert ("mail", "fail") in rows(body) and "POP3 · 3 次" in body and "需使用客户端专用密码" in body


def test_a_bad_cursor_starts_from_the_newest(signed_in):
    assert rows(text(signed_in.get(PAGE + "?before=yesterday"))) == [("web", "ok")]


def test_the_settings_pages_link_to_it(signed_in):
    assert f'href="{PAGE}"' in text(signed_in.get("/settings/security"))
