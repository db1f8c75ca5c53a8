"""统计报表 (/admin): 30-day SVG charts with their tables, Chinese labels, a CSV per table (UTF-8 BOM,
formula cells neutralised), safe under the CSP; only for roles with the reports permission."""

from __future__ import annotations

import csv
import io
import re

import pyotp
import pytest

from portal import crypto
from portal.models import Factor, utcnow
from portal.services import accounts, audit, report_summary
from portal.services.client import Client
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

ADMIN = "it-admin@mail.xamd.edu.cn"
DAILY = ("logins", "second_steps", "approvals", "adoption_trend")
OTHERS = ("adoption", "activity", "lockouts", "failures")


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


def rows(response) -> list[list[str]]:
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")  # Excel reads UTF-8 only with the BOM
    return list(csv.reader(io.StringIO(body[1:])))


def table_row(page: str, table: str, day: str) -> list[str]:
    section = re.search(rf'<table class="grid daily" id="{table}">(.*?)</table>', page, re.S).group(1)
    return re.findall(r"<td>(.*?)</td>", re.search(rf"<tr><td>{day}</td>(.*?)</tr>", section, re.S).group(1))


def test_the_page_shows_four_charts_with_their_tables(admin_browser, user):
    for _ in range(2):
        audit.record("login_password", user=user, outcome="fail")
    audit.record("app_login_denied", user=user, method="app", outcome="not_me")
    response = admin_browser.get("/admin")
    page = text(response)
    assert response.status_code == 200
    charts = re.findall(r'<figure class="chart" data-chart="(\w+)">(<svg .*?</svg>)<ul', page, re.S)
    assert [name for name, _ in charts] == list(DAILY)
    for _name, svg in charts:
        assert "<script" not in svg and "<style" not in svg and "style=" not in svg
    today = report_summary.local_day(utcnow()).isoformat()
    assert table_row(page, "logins", today)[1] == "2"  # 密码错误
    assert table_row(page, "approvals", today)[1] == "1"  # 不是本人操作
    assert table_row(page, "second_steps", today) == ["1"]  # the admin's 第三方 OTP login
    for label in ("每日登录(按结果)", "成功", "密码错误", "验证码错误", "锁定", "不是本人操作", "已过期", "第三方 OTP"):
        assert label in page
    for name in DAILY + OTHERS:
        assert f'href="/admin?format=csv&amp;table={name}"' in page


def test_the_csp_allows_no_inline_style_or_script(admin_browser):
    policy = admin_browser.get("/admin").headers["Content-Security-Policy"]
    assert "style-src 'self'" in policy and "unsafe-inline" not in policy


def test_every_table_downloads_as_csv(admin_browser, user):
    audit.record("login_complete", user=user, method="totp")
    for name in DAILY + OTHERS:
        response = admin_browser.get(f"/admin?format=csv&table={name}")
        assert response.status_code == 200, name
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert f'filename="{name}.csv"' in response.headers["Content-Disposition"]
        assert rows(response)[0], name
    logins = rows(admin_browser.get("/admin?format=csv&table=logins"))
    assert logins[0] == ["日期", "成功", "密码错误", "验证码错误", "锁定"]
    assert len(logins) == 31 and logins[-1][0] == report_summary.local_day(utcnow()).isoformat()
    assert int(logins[-1][1]) >= 2  # the admin's login and the one recorded here


def test_csv_cells_that_look_like_formulas_are_neutralised(admin_browser):
    audit.record(
        "login_password", account='=HYPERLINK("http://evil")', outcome="fail", detail="+1-2", client=Client(ip="@ip")
    )
    failures = rows(admin_browser.get("/admin?format=csv&table=failures"))
    assert failures[0] == ["时间", "账号", "事件", "验证方式", "结果", "IP", "详情"]
    row = next(r for r in failures[1:] if "HYPERLINK" in r[1])
    assert row[1] == '\'=HYPERLINK("http://evil")' and row[6] == "'+1-2" and row[5] == "'@ip"
    assert row[2:5] == ["登录:密码验证", "", "失败"]  # Chinese labels, never the codes


def test_recent_failures_are_shown_with_chinese_labels(admin_browser, user):
    audit.record("login_verify", user=user, method="totp", outcome="fail")
    page = text(admin_browser.get("/admin"))
    failures = re.search(r'<table class="grid events" id="failures">(.*?)</table>', page, re.S).group(1)
    assert "<td>登录:二次验证</td>" in failures and "<td>第三方 OTP</td>" in failures and "<td>失败</td>" in failures
    assert "login_verify" not in failures


def test_an_unknown_table_is_not_found(admin_browser):
    assert admin_browser.get("/admin?format=csv&table=users").status_code == 404
    assert admin_browser.get("/admin?format=csv").status_code == 404
    assert admin_browser.get("/admin?format=pdf").status_code == 200  # the page itself


def test_helpdesk_gets_no_reports_nor_their_csv(new_browser, user, clock):
    helpdesk = accounts.create("desk@mail.xamd.edu.cn", PASSWORD)
    helpdesk.role = "helpdesk"
    helpdesk.save()
    browser = new_browser()
    complete_login(browser, helpdesk.account, bind_totp(helpdesk), clock)
    assert location(browser.get("/admin?format=csv&table=logins")) == "/admin/users"
    assert location(new_browser().get("/admin?format=csv&table=logins")) == "/login"
